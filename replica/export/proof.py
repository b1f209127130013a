"""Before/after export on the same prompts: Replica's clean-stop rate and speed on the merged model (transformers)
and on the exported file (llama.cpp), and how far their logits differ."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from replica.export.llama_cpp_run import clean_stop_rate, load_gguf
from replica.export.source import ExportSource


@dataclass(frozen=True)
class Generated:
    clean_stop_rate: float
    tokens_per_s: float  # generated tokens over generation time, one prompt at a time
    prompts: int


def test_contexts(run_dir: str | Path, count: int, seed: int = 0) -> list[list[dict]]:
    """The contexts of up to `count` examples of the run's test split (a seeded sample; the run's own dataset)."""
    from replica.evaluation.data import load_split
    from replica.prepare.pipeline import run_dataset

    rows = load_split(run_dataset(run_dir, log=lambda _: None).dir, "test")
    if len(rows) > count:
        rows = random.Random(seed).sample(rows, count)
    return [row["context"] for row in rows]


test_contexts.__test__ = False  # a helper, not a pytest test


def before_export(source: ExportSource, contexts: list[list[dict]], sampling) -> Generated:
    """Replica's own generation on the merged model; context i samples with seed + i."""
    from replica.inference.generation import generate_replies
    from replica.inference.transformers_engine import TransformersEngine

    started = time.perf_counter()
    relation = [(source.formatter.addressee(None), False)]  # a labelled run answers its most common label
    engine = TransformersEngine(source.model, source.formatter)
    replies = [generate_replies(engine, [c], replace(sampling, seed=sampling.seed + i), relations=relation)[0]
               for i, c in enumerate(contexts)]
    seconds = time.perf_counter() - started
    return Generated(
        clean_stop_rate=sum(r.clean_stop for r in replies) / max(1, len(replies)),
        tokens_per_s=sum(len(r.token_ids) for r in replies) / max(seconds, 1e-9),
        prompts=len(contexts),
    )


def after_export(gguf_path: Path, formatter, contexts: list[list[dict]], sampling, threads: int = 1) -> Generated:
    """llama.cpp's generation on the exported file, stopping only where llama.cpp ends generation."""
    llm = load_gguf(gguf_path, n_ctx=max(512, formatter.max_length + sampling.max_new_tokens), seed=sampling.seed,
                    threads=threads)
    try:
        rate, replies = clean_stop_rate(llm, formatter, contexts, sampling)
    finally:
        llm.close()
    return Generated(
        clean_stop_rate=rate,
        tokens_per_s=sum(len(r.token_ids) for r in replies) / max(sum(r.seconds for r in replies), 1e-9),
        prompts=len(contexts),
    )


def llama_cpp_logit_diff(source: ExportSource, gguf_path: Path, prompts: list[list[int]]) -> float:
    """Max |logit difference| between the merged model and llama.cpp over every position of `prompts`."""
    import torch

    llm = load_gguf(gguf_path, n_ctx=max(len(p) for p in prompts) + 8, logits_all=True)
    worst = 0.0
    try:
        for ids in prompts:
            llm.reset()
            llm.eval(ids)
            with torch.no_grad():
                expected = source.model(torch.tensor([ids])).logits[0].float().numpy()
            worst = max(worst, float(np.abs(np.asarray(llm.scores[: len(ids)]) - expected).max()))
    finally:
        llm.close()
    return worst


def transformers_logit_diff(source: ExportSource, gguf_path: Path, prompts: list[list[int]]) -> float:
    """Max |logit difference| between the merged model and the file loaded back by transformers (`gguf_file=`)."""
    import torch
    from transformers import AutoModelForCausalLM

    loaded = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name, dtype=torch.float32).eval()
    worst = 0.0
    with torch.no_grad():
        for ids in prompts:
            batch = torch.tensor([ids])
            worst = max(worst, (source.model(batch).logits - loaded(batch).logits).abs().max().item())
    return worst
