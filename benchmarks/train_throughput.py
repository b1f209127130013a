"""Training throughput of Replica's QLoRA path against the reference projects' HF Trainer recipe, in one run.

    python benchmarks/train_throughput.py                       # 40 timed steps, batch 8, last line JSON
    python benchmarks/train_throughput.py --steps 3 data.max_length=256   # extra args are Hydra overrides

Both sides train the same tiny model (built by `ensure_tiny_model` from the prepared dataset's train split,
exactly as train.py does), loaded 4-bit NF4 by `load_base_model`, with `disable_cpu_inference_repacking`, the
LoRA of `conf/lora` applied by `wrap_with_lora` (same kbit preparation and gradient-checkpointing setting), the
same train-split examples, batch size, `data.max_length`, 8-bit paged AdamW (bitsandbytes), learning rate,
gradient clipping, and the same number of optimizer steps on CPU.

- **ours**: Lightning `Trainer` (from `conf/trainer`, with validation, checkpointing, logging and the progress
  bar switched off and `max_steps` set) fitting `ReplicaModule` on `ChatDataModule`: `ChatFormatter.encode`
  (role tokens, loss on the reply + end-of-turn only, oldest context turns dropped to fit), `GroupedBatchSampler`
  (length-grouped) + `PadCollator` (pad to the batch's longest).
- **baseline**: `transformers.Trainer` + the same PEFT model on the plain ``B: …\\nA: …`` text + EOS of each
  example (the Mistral reference format), whole text supervised, `DataCollatorForLanguageModeling(mlm=False)`
  (pad to longest), no length grouping (`train_sampling_strategy="random"`, transformers 5's `group_by_length=False`),
  `optim="paged_adamw_8bit"`, truncation at `data.max_length`.

The differences are exactly the padding/grouping and what gets computed (role-token vs plain text, reply-only
vs full-text labels; ours also trains the new role/end-of-turn embedding rows). Each side first runs `--warmup`
untimed steps; the clock then covers the next `--steps` optimizer steps, each from the moment the side resumes to
the end of its optimizer step (data loading, forward, backward, optimizer; no model load).
Tokens are the attention-mask ones of the batches actually fed in the timed steps; padding fraction is pad
positions over all positions of those batches. The baseline's sequences are longer (plain text markers, and
it never drops context to fit), so examples per second are reported next to non-pad tokens per second.

The two trainings run at the same time in two threads but take strict turns, one optimizer step each (ours in
the main thread, as Lightning wants; the baseline in a worker): each side's clock only adds up its own turns. On
a shared machine a burst of other load can stretch single steps tenfold; interleaving spreads it over both
sides alike, so the ratio stays meaningful even when the absolute rates do not.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # run as a script from anywhere: import replica/, data_modules/, callbacks/

DEFAULT_OVERRIDES = ("trainer=cpu",)
SPEEDUP_TARGET = 1.5
PADDING_TARGET = 0.10


@dataclass
class Throughput:
    """What one side fed and how long its timed steps took."""

    name: str
    seconds: float = 0.0
    examples: int = 0
    tokens: int = 0  # non-pad positions
    positions: int = 0  # all positions, pad included
    steps: int = 0

    def add(self, attention_mask: torch.Tensor) -> None:
        self.examples += int(attention_mask.shape[0])
        self.tokens += int(attention_mask.sum())
        self.positions += int(attention_mask.numel())
        self.steps += 1

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0

    @property
    def examples_per_s(self) -> float:
        return self.examples / self.seconds if self.seconds else 0.0

    @property
    def padding_fraction(self) -> float:
        return 1.0 - self.tokens / self.positions if self.positions else 0.0


class Turns:
    """Two trainings in two threads take strict turns, one optimizer step at a time, so both meet the same load."""

    def __init__(self, first: str, second: str) -> None:
        self.other = {first: second, second: first}
        self.current = first
        self.done: set[str] = set()
        self.condition = threading.Condition()

    def wait(self, side: str) -> float:
        """Block until it is `side`'s turn; return the moment it resumed."""
        with self.condition:
            self.condition.wait_for(lambda: self.current == side)
        return time.perf_counter()

    def pass_on(self, side: str) -> None:
        with self.condition:
            if self.other[side] not in self.done:
                self.current = self.other[side]
            self.condition.notify_all()

    def finish(self, side: str) -> None:
        """`side` trained to the end (or failed): the other one runs alone from now on."""
        with self.condition:
            self.done.add(side)
            self.current = self.other[side]
            self.condition.notify_all()


class StepClock:
    """Adds up `side`'s own turns for optimizer steps warmup+1 … warmup+steps and keeps their attention masks.

    A turn runs from the moment the side resumes (after the other side's step) to the end of its optimizer step,
    so it covers fetching and collating the batch, forward, backward and the optimizer, and nothing of the other.
    """

    def __init__(self, side: str, warmup: int, steps: int, turns: Turns) -> None:
        self.side = side
        self.window = range(warmup + 1, warmup + steps + 1)
        self.turns = turns
        self.resumed = 0.0
        self.seconds = 0.0
        self.timed_steps = 0
        self.batches: list[torch.Tensor] = []

    def train_started(self) -> None:
        self.resumed = self.turns.wait(self.side)

    def step_ended(self, global_step: int, attention_mask: torch.Tensor | None = None) -> None:
        if global_step in self.window:
            self.seconds += time.perf_counter() - self.resumed
            self.timed_steps += 1
            if attention_mask is not None:
                self.batches.append(attention_mask.detach().cpu())
        self.turns.pass_on(self.side)
        self.resumed = self.turns.wait(self.side)

    def result(self, fed: Sequence[torch.Tensor] | None = None) -> Throughput:
        if self.timed_steps != len(self.window):
            raise RuntimeError(f"{self.side}: {self.timed_steps} of {len(self.window)} timed steps ran")
        out = Throughput(self.side, seconds=self.seconds)
        for mask in self.batches if fed is None else fed:
            out.add(mask)
        return out


# ---- ours: Lightning + ReplicaModule + ChatDataModule ----------------------------------------------------------
def run_ours(cfg, inputs, batch_size: int, clock: StepClock, workdir: Path) -> Throughput:
    """Fit ReplicaModule on ChatDataModule with Lightning for warmup+steps optimizer steps; time the last `steps`."""
    from hydra.utils import instantiate
    from lightning import Callback, seed_everything

    from replica.training.run import build_module

    class Clock(Callback):
        def on_train_start(self, trainer, pl_module) -> None:
            clock.train_started()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            clock.step_ended(trainer.global_step, batch["attention_mask"])

    seed_everything(cfg.seed, workers=True, verbose=False)
    make_datamodule = instantiate(cfg.datamodule, _partial_=True, batch_size=batch_size, preview_path=None)
    datamodule = make_datamodule(dataset=inputs.dataset, formatter=inputs.formatter)
    module = build_module(cfg, inputs)
    trainer = instantiate(
        cfg.trainer,
        default_root_dir=str(workdir),
        max_steps=clock.window.stop - 1,
        max_epochs=-1,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        logger=False,
        callbacks=[Clock()],
    )
    trainer.fit(module, datamodule=datamodule)
    return clock.result()


# ---- baseline: HF Trainer + PEFT + DataCollatorForLanguageModeling ------------------------------------------
def plain_text(example: Mapping, eos: str) -> str:
    """The Mistral reference's format: every turn as ``B: text`` / ``A: text`` lines, the reply last, then EOS."""
    roles = {"me": "A", "them": "B"}
    lines = [f"{roles[turn['role']]}: {turn['text']}" for turn in example["context"]]
    return "\n".join([*lines, f"A: {example['target']}"]) + eos


def baseline_rows(examples: Sequence[Mapping], tokenizer, max_length: int) -> list[dict[str, list[int]]]:
    texts = [plain_text(example, tokenizer.eos_token) for example in examples]
    encoded = tokenizer(texts, truncation=True, max_length=max_length)
    return [{"input_ids": ids, "attention_mask": mask} for ids, mask in zip(encoded["input_ids"], encoded["attention_mask"])]


class RecordingCollator:
    """Wraps a collator and keeps every produced batch's attention mask, in the order the batches were made."""

    def __init__(self, collator) -> None:
        self.collator = collator
        self.masks: list[torch.Tensor] = []

    def __call__(self, features):
        batch = self.collator(features)
        self.masks.append(batch["attention_mask"].detach().clone())
        return batch


def baseline_model(cfg, base_path: str, tokenizer):
    """The same 4-bit base and LoRA as ours (plain format: no role-token rows to train)."""
    from replica.model.base_model import disable_cpu_inference_repacking, load_base_model, wrap_with_lora
    from replica.model.tokens import ensure_embedding_rows

    base = load_base_model(base_path, cfg.model, cfg.quant, "cpu")
    disable_cpu_inference_repacking(base)
    ensure_embedding_rows(base, tokenizer)
    base.config.pad_token_id = tokenizer.pad_token_id
    return wrap_with_lora(
        base, cfg.lora, [], quantized=cfg.quant["mode"] != "none", gradient_checkpointing=cfg.gradient_checkpointing
    )


def run_baseline(cfg, base_path: str, examples: Sequence[Mapping], batch_size: int, clock: StepClock,
                 workdir: Path) -> Throughput:
    """The reference recipe with transformers.Trainer for warmup+steps optimizer steps; time the last `steps`."""
    from transformers import DataCollatorForLanguageModeling, Trainer, TrainerCallback, TrainingArguments, set_seed
    from transformers.trainer_callback import PrinterCallback

    from replica.model.base_model import load_tokenizer

    class Clock(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            clock.train_started()

        def on_step_end(self, args, state, control, **kwargs):
            clock.step_ended(state.global_step)

    set_seed(cfg.seed)
    tokenizer = load_tokenizer(base_path, cfg.model, "plain")
    rows = baseline_rows(examples, tokenizer, int(cfg.data.max_length))
    collator = RecordingCollator(DataCollatorForLanguageModeling(tokenizer, mlm=False))
    model = baseline_model(cfg, base_path, tokenizer)
    optimizer = cfg.optimizer
    args = TrainingArguments(
        output_dir=str(workdir),
        per_device_train_batch_size=batch_size,
        max_steps=clock.window.stop - 1,
        learning_rate=float(optimizer.lr),
        weight_decay=float(optimizer.weight_decay),
        adam_beta1=float(optimizer.betas[0]),
        adam_beta2=float(optimizer.betas[1]),
        max_grad_norm=float(cfg.trainer.gradient_clip_val or 0.0),
        lr_scheduler_type="cosine",
        warmup_steps=float(cfg.scheduler.get("warmup_ratio", 0.0)),  # a float below 1 is a ratio of the steps
        optim="paged_adamw_8bit",
        train_sampling_strategy="random",  # transformers 5's spelling of group_by_length=False
        gradient_checkpointing=False,  # already set up as configured by wrap_with_lora, same as ours
        eval_strategy="no",
        save_strategy="no",
        logging_strategy="no",
        report_to="none",
        use_cpu=True,
        dataloader_num_workers=0,
        seed=int(cfg.seed),
        disable_tqdm=True,
    )
    trainer = Trainer(model=model, args=args, train_dataset=rows, data_collator=collator, callbacks=[Clock()])
    trainer.remove_callback(PrinterCallback)  # it prints the final metrics dict to stdout
    trainer.train()
    first, last = clock.window.start, clock.window.stop - 1
    return clock.result(collator.masks[first - 1 : last])  # the i-th batch made is the one fed at step i


# ---- shared setup and report ------------------------------------------------------------------------------
def prepare(overrides: Sequence[str]):
    """Composed config, the run's inputs (prepared dataset, tiny base model, formatter) and the train split, as
    train.py builds them."""
    from replica.atomic import read_jsonl
    from replica.config import compose, normalize, validate
    from replica.training.inputs import resolve_inputs

    cfg = compose("train", [*DEFAULT_OVERRIDES, *overrides])
    normalize(cfg)
    validate(cfg)
    inputs = resolve_inputs(cfg, record_path=None)
    return cfg, inputs, read_jsonl(inputs.dataset.split_path("train"))


def report(ours: Throughput, baseline: Throughput, steps: int, batch_size: int) -> dict[str, Any]:
    speedup = ours.tokens_per_s / baseline.tokens_per_s if baseline.tokens_per_s else 0.0
    return {
        "steps": steps,
        "batch_size": batch_size,
        "ours_tokens_per_s": round(ours.tokens_per_s, 1),
        "baseline_tokens_per_s": round(baseline.tokens_per_s, 1),
        "speedup": round(speedup, 3),
        "padding_fraction_ours": round(ours.padding_fraction, 4),
        "padding_fraction_baseline": round(baseline.padding_fraction, 4),
        "ours_examples_per_s": round(ours.examples_per_s, 2),
        "baseline_examples_per_s": round(baseline.examples_per_s, 2),
        "examples_speedup": round(ours.examples_per_s / baseline.examples_per_s, 3) if baseline.examples_per_s else 0.0,
        "ours_seconds": round(ours.seconds, 2),
        "baseline_seconds": round(baseline.seconds, 2),
        "ours_seconds_per_step": round(ours.seconds / max(ours.steps, 1), 3),
        "baseline_seconds_per_step": round(baseline.seconds / max(baseline.steps, 1), 3),
        "targets": {
            f"speedup>={SPEEDUP_TARGET}": speedup >= SPEEDUP_TARGET,
            f"padding_fraction_ours<={PADDING_TARGET:.2f}": ours.padding_fraction <= PADDING_TARGET,
        },
    }


def summary_lines(ours: Throughput, baseline: Throughput, result: dict[str, Any]) -> list[str]:
    lines = [f"{'':10} {'seconds':>8} {'examples':>9} {'tokens':>8} {'tok/s':>9} {'ex/s':>8} {'padding':>8}"]
    for side in (ours, baseline):
        lines.append(
            f"{side.name:10} {side.seconds:8.2f} {side.examples:9d} {side.tokens:8d} {side.tokens_per_s:9.1f} "
            f"{side.examples_per_s:8.2f} {side.padding_fraction:8.1%}"
        )
    lines.append(
        f"speedup (non-pad tokens/s): {result['speedup']:.2f}x, examples/s: {result['examples_speedup']:.2f}x; "
        + ", ".join(f"{name}: {'met' if ok else 'NOT met'}" for name, ok in result["targets"].items())
    )
    return lines


def quiet_libraries() -> None:
    """Keep the output to the summary: library banners and weight-loading progress bars off."""
    import lightning  # noqa: F401  (sets its loggers' levels on import; override them afterwards)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "transformers", "peft", "bitsandbytes"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")


def run_both(cfg, inputs, examples: Sequence[Mapping], batch_size: int, steps: int, warmup: int,
             workdir: Path) -> tuple[Throughput, Throughput]:
    """Ours in this thread (Lightning wants the main thread), the baseline in another, taking turns step by step."""
    turns = Turns("ours", "baseline")
    clocks = {side: StepClock(side, warmup, steps, turns) for side in ("ours", "baseline")}

    def baseline() -> Throughput:
        try:
            return run_baseline(cfg, inputs.base_path, examples, batch_size, clocks["baseline"], workdir / "baseline")
        finally:
            turns.finish("baseline")

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="baseline") as pool:
        pending = pool.submit(baseline)
        try:
            ours = run_ours(cfg, inputs, batch_size, clocks["ours"], workdir / "ours")
        finally:
            turns.finish("ours")
        return ours, pending.result()


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=40, help="timed optimizer steps per side (default 40)")
    parser.add_argument("--batch-size", type=int, default=8, help="examples per batch (default 8)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed optimizer steps before the clock starts")
    parser.add_argument("--model", default=None, help="a conf/model preset, e.g. smollm2-135m (default: the config's, tiny)")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides of conf/train.yaml (default: bundled sample)")
    args = parser.parse_args(argv)
    if args.model:
        args.overrides = [f"model={args.model}", *args.overrides]
    if min(args.steps, args.batch_size, args.warmup) < 1:
        parser.error("--steps, --batch-size and --warmup must be at least 1")
    quiet_libraries()

    from replica.errors import ReplicaInputError

    try:
        cfg, inputs, examples = prepare(args.overrides)
    except ReplicaInputError as err:
        print(f"train_throughput.py: error: {' '.join(str(err).split())}", file=sys.stderr)
        sys.exit(2)
    print(f"base model {inputs.base_path}; {len(examples)} train examples; batch {args.batch_size}; "
          f"{args.warmup} warm-up + {args.steps} timed steps per side, interleaved; "
          f"{torch.get_num_threads()} threads", flush=True)
    with tempfile.TemporaryDirectory(prefix="replica-throughput-") as tmp:
        ours, baseline = run_both(cfg, inputs, examples, args.batch_size, args.steps, args.warmup, Path(tmp))
    result = report(ours, baseline, args.steps, args.batch_size)
    for line in summary_lines(ours, baseline, result):
        print(line)
    print(json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    main()
