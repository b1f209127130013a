"""At each validation end: generate replies for fixed val contexts and measure whether the model stops cleanly.

Replies come from the run's generation engine (`generation.engine`): on a CPU, llama.cpp on a GGUF of the model
being trained (its 4-bit base dequantized plus the current adapter, written without touching the training model,
and removed after use); on a GPU, the training model itself through transformers.
"""

from __future__ import annotations

import random
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from lightning import Callback, LightningModule, Trainer

from replica.atomic import write_jsonl
from replica.errors import ReplicaInputError
from replica.gguf.gguf_file import write_live_gguf
from replica.inference.engines import (
    TRANSFORMERS,
    choose_engine,
    explain_fallback,
    is_auto,
    open_llama_cpp,
)
from replica.inference.generation import generate_replies
from replica.inference.jobs import Sampling
from replica.inference.transformers_engine import TransformersEngine
from replica.settings import GenerationSection


class StopSequenceEval(Callback):
    """Logs `val/clean_stop_rate` and `val/length_ratio` (mean generated / reference reply length in chars) of the
    replies `formatter` decodes for a seeded sample of `num_samples` val `examples`.

    Samples (private chat text) are written to `samples_dir/step_XXXXXX.jsonl` only, unless
    `log_samples_to_logger` is set.
    """

    def __init__(
        self,
        formatter,
        examples: Sequence[dict],
        num_samples: int = 48,
        batch_size: int = 16,
        max_new_tokens: int | None = None,
        samples_dir: str | None = None,
        log_samples_to_logger: bool = False,
        seed: int = 0,
        generation: Mapping | None = None,
        work_dir: str | None = None,
    ) -> None:
        self.formatter = formatter
        self.examples = list(examples) if len(examples) <= num_samples else random.Random(seed).sample(examples, num_samples)
        self.num_samples = num_samples
        self.batch_size = batch_size
        block = GenerationSection(**dict(generation or {}))  # the run's sampling block; its stop_eval says greedy or not
        self.sampling = Sampling.from_block(block, do_sample=block.stop_eval == "sample", max_new_tokens=max_new_tokens, seed=seed)
        self.engine_name, self.engine_quant = block.engine, block.engine_quant
        self.work_dir = work_dir  # where the llama.cpp engine's GGUF of the training model is written (a temp dir if None)
        self.samples_dir = samples_dir
        self.log_samples_to_logger = log_samples_to_logger

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking or not self.num_samples:
            return
        examples = self.examples
        with self._engine(pl_module) as engine:
            replies = generate_replies(engine, [e["context"] for e in examples], self.sampling, self.batch_size)
        rate = sum(r.clean_stop for r in replies) / max(1, len(replies))
        generated = sum(len(r.text) for r in replies) / max(1, len(replies))
        reference = sum(len(e["target"]) for e in examples) / max(1, len(examples))
        pl_module.log("val/clean_stop_rate", rate, sync_dist=False)
        pl_module.log("val/length_ratio", generated / max(reference, 1e-9), sync_dist=False)
        if trainer.is_global_zero and self.samples_dir:
            rows = [
                {"context": e["context"], "reference": e["target"], "generated": r.text, "clean_stop": r.clean_stop}
                for e, r in zip(examples, replies)
            ]
            write_jsonl(Path(self.samples_dir) / f"step_{trainer.global_step:06d}.jsonl", rows)
            if self.log_samples_to_logger:
                for logger in trainer.loggers:
                    if hasattr(logger, "log_text"):
                        logger.log_text(
                            key="val/samples",
                            columns=["reference", "generated"],
                            data=[[row["reference"], row["generated"]] for row in rows[:16]],
                        )

    @contextmanager
    def _engine(self, pl_module: LightningModule) -> Iterator:
        """The engine this validation generates with (a llama.cpp one is built from the live model and freed after)."""
        name = choose_engine(self.engine_name, pl_module.device.type)
        if name == TRANSFORMERS:
            yield TransformersEngine(pl_module.model, self.formatter)
            return
        with tempfile.TemporaryDirectory(prefix=".stop-eval-", dir=self._work_dir()) as scratch:
            path = Path(scratch) / "training.gguf"
            try:
                write_live_gguf(pl_module.model, self.formatter, path, self.engine_quant, adapter=True, name="replica-training")
            except ReplicaInputError as err:
                if not is_auto(self.engine_name):
                    raise
                explain_fallback(err)
                self.engine_name = TRANSFORMERS
                yield TransformersEngine(pl_module.model, self.formatter)
                return
            engine = open_llama_cpp(path, self.formatter, slots=self.batch_size, max_new_tokens=self.sampling.max_new_tokens)
            try:
                yield engine
            finally:
                engine.close()

    def _work_dir(self) -> str | None:
        if self.work_dir is None:
            return None
        Path(self.work_dir).mkdir(parents=True, exist_ok=True)
        return self.work_dir
