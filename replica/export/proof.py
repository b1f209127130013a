"""Before/after export on the same prompts: Replica's clean-stop rate on the merged model and in llama.cpp."""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from pathlib import Path

from replica.export.llama_cpp_run import clean_stop_rate, load_gguf
from replica.export.source import ExportSource


@dataclass(frozen=True)
class StopComparison:
    before: float  # merged model, Replica's generation
    after: float  # exported file, llama.cpp's generation
    prompts: int
    replica_tokens_per_s: float
    llama_cpp_tokens_per_s: float


def test_contexts(run_dir: str | Path, count: int, seed: int = 0) -> list[list[dict]]:
    """The contexts of up to `count` examples of the run's test split (a seeded sample; the run's own dataset)."""
    from replica.evaluation.run import load_split
    from replica.prepare.pipeline import run_dataset

    rows = load_split(run_dataset(run_dir, log=lambda _: None).dir, "test")
    if len(rows) > count:
        rows = random.Random(seed).sample(rows, count)
    return [row["context"] for row in rows]


test_contexts.__test__ = False  # a helper, not a pytest test


def compare_clean_stop(source: ExportSource, gguf_path: Path, contexts: list[list[dict]], sampling) -> StopComparison:
    """Generate one reply per context before (transformers) and after (llama.cpp) export, one at a time each."""
    import time

    from replica.inference.generation import generate_replies

    started = time.perf_counter()
    replies = [generate_replies(source.model, source.formatter, [c], replace(sampling, seed=sampling.seed + i))[0]
               for i, c in enumerate(contexts)]
    replica_seconds = time.perf_counter() - started
    before = sum(r.clean_stop for r in replies) / max(1, len(replies))
    llm = load_gguf(gguf_path, n_ctx=max(512, source.formatter.max_length + sampling.max_new_tokens), seed=sampling.seed)
    try:
        after, exported = clean_stop_rate(llm, source.formatter, contexts, sampling)
    finally:
        llm.close()
    replica_tokens = sum(len(r.token_ids) for r in replies)
    llama_tokens = sum(len(r.token_ids) for r in exported)
    return StopComparison(
        before=before,
        after=after,
        prompts=len(contexts),
        replica_tokens_per_s=replica_tokens / max(replica_seconds, 1e-9),
        llama_cpp_tokens_per_s=llama_tokens / max(sum(r.seconds for r in exported), 1e-9),
    )
