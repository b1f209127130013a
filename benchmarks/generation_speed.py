"""Batched vs one-by-one reply generation on the same prompts, same model, same process.

    python benchmarks/generation_speed.py [RUN_DIR] [--prompts 64] [--max-new-tokens 32] [--batch-size 16]

Without RUN_DIR a tiny run is trained into a temporary folder first (the bundled sample, tiny model, 4-bit).
The prompts are the contexts of the run's validation split (repeated if it has fewer); decoding is greedy, so
both modes do the same work per prompt except what batching adds (left padding, waiting for a batch's longest
reply). A short warm-up runs first so one-time costs (kernel set-up, weight repacking) count for neither mode.
The last line printed is JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TARGET_SPEEDUP = 3.0
WARMUP_PROMPTS = 4


def val_contexts(run_dir: Path, count: int) -> list[list[dict]]:
    """`count` contexts of the run's val split, cycling through it when it is shorter."""
    from replica.evaluation.data import load_split
    from replica.prepare.pipeline import run_dataset

    rows = load_split(run_dataset(run_dir).dir, "val")
    return [rows[index % len(rows)]["context"] for index in range(count)]


def timed(model, formatter, contexts, sampling, batch_size: int):
    from replica.inference.generation import generate_replies

    started = time.perf_counter()
    replies = generate_replies(model, formatter, contexts, sampling, batch_size=batch_size)
    return time.perf_counter() - started, replies


def benchmark(run_dir: Path, prompts: int, max_new_tokens: int, batch_size: int, quantized: bool) -> dict:
    import torch

    from replica.inference.generation import Sampling
    from replica.inference.loading import load_run

    torch.manual_seed(0)
    contexts = val_contexts(run_dir, prompts)
    model, formatter, _ = load_run(run_dir, device="cpu", quantized=quantized)
    sampling = Sampling(max_new_tokens=max_new_tokens, do_sample=False)
    timed(model, formatter, contexts[:WARMUP_PROMPTS], sampling, batch_size)
    batched_s, batched = timed(model, formatter, contexts, sampling, batch_size)
    single_s, single = timed(model, formatter, contexts, sampling, 1)
    speedup = single_s / batched_s
    return {
        "prompts": prompts,
        "batch_size": batch_size,
        "max_new_tokens": max_new_tokens,
        "quantized": quantized,
        "threads": torch.get_num_threads(),
        "batched_s": round(batched_s, 3),
        "one_by_one_s": round(single_s, 3),
        "speedup": round(speedup, 2),
        "batched_tokens": sum(len(reply.token_ids) for reply in batched),
        "one_by_one_tokens": sum(len(reply.token_ids) for reply in single),
        "same_replies": sum(a.text == b.text for a, b in zip(batched, single)) / prompts,
        "target": {f"speedup>={TARGET_SPEEDUP:g}": speedup >= TARGET_SPEEDUP},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", nargs="?", type=Path, help="a finished training run (default: train a tiny one)")
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--no-quantized", dest="quantized", action="store_false", help="load the base in 16-bit")
    args = parser.parse_args(argv)

    from replica.errors import ReplicaInputError

    try:
        with tempfile.TemporaryDirectory(prefix="replica-genbench-") as scratch:
            run_dir = args.run_dir
            if run_dir is None:
                from tests.helpers import train_tiny

                print("no run dir given: training a tiny run first", file=sys.stderr)
                _, run_dir = train_tiny(Path(scratch))
            result = benchmark(run_dir, args.prompts, args.max_new_tokens, args.batch_size, args.quantized)
    except ReplicaInputError as err:
        print(f"generation_speed.py: error: {err}", file=sys.stderr)
        return 2
    print(
        f"{result['prompts']} prompts, greedy, max_new_tokens={result['max_new_tokens']}, "
        f"{'4-bit' if result['quantized'] else '16-bit'} base, {result['threads']} threads"
    )
    batched = f"batched (batch_size={result['batch_size']}):"
    print(f"  {batched:<28} {result['batched_s']:.2f} s, {result['batched_tokens']} tokens")
    print(f"  {'one by one:':<28} {result['one_by_one_s']:.2f} s, {result['one_by_one_tokens']} tokens")
    print(
        f"  speedup {result['speedup']:.2f}x (target >= {TARGET_SPEEDUP:g}x); "
        f"identical replies: {result['same_replies']:.0%}"
    )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
