"""Replies per second of `replica serve` under 8 concurrent `openai` clients: batched vs one request at a time.

    python benchmarks/serve_throughput.py [RUN_DIR] [--clients 8] [--requests-per-client 4] [--max-tokens 32]

Without RUN_DIR a tiny run is trained into a temporary folder first (the bundled sample, tiny model, 4-bit).
The same server command runs twice on a free localhost port: with `--max-batch CLIENTS` (requests arriving
together share one batched generate) and with `--max-batch 1` (one request at a time). Every client sends the
same seeded requests in both modes (each row samples with its own seed, so both modes do the same work); one
warm-up request per server is not timed. The last line printed is JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TARGET_SPEEDUP = 3.0
PROMPTS = ("ciao, stasera ci sei?", "hai visto la partita?", "where are you?", "andiamo al mare domani?")


def drive(url: str, clients: int, per_client: int, max_tokens: int) -> tuple[float, dict[int, tuple[str, int]]]:
    """(seconds, {seed: (reply, completion tokens)}) for `clients` threads each sending `per_client` requests
    back to back."""
    from openai import OpenAI

    client = OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=600)

    def one(client_index: int) -> dict[int, tuple[str, int]]:
        replies = {}
        for request in range(per_client):
            seed = client_index * 1000 + request
            reply = client.chat.completions.create(
                model="replica",
                messages=[{"role": "user", "content": PROMPTS[seed % len(PROMPTS)]}],
                max_tokens=max_tokens,
                temperature=0.8,
                seed=seed,
            )
            replies[seed] = (reply.choices[0].message.content, reply.usage.completion_tokens)
        return replies

    client.chat.completions.create(model="replica", messages=[{"role": "user", "content": "ciao"}], max_tokens=4, seed=0)
    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        replies = {seed: reply for part in pool.map(one, range(clients)) for seed, reply in part.items()}
    return time.perf_counter() - started, replies


def measure(run_dir: Path, scratch: Path, max_batch: int, clients: int, per_client: int, max_tokens: int) -> tuple[float, dict]:
    from tests.serve_helpers import Server

    server = Server(run_dir, scratch / f"server-batch{max_batch}.log", "--max-batch", str(max_batch), "--max-tokens-limit", str(max(max_tokens, 8)))
    try:
        return drive(server.url, clients, per_client, max_tokens)
    finally:
        server.stop()


def benchmark(run_dir: Path, scratch: Path, clients: int, per_client: int, max_tokens: int) -> dict:
    replies = clients * per_client
    batched_s, batched = measure(run_dir, scratch, clients, clients, per_client, max_tokens)
    single_s, single = measure(run_dir, scratch, 1, clients, per_client, max_tokens)
    speedup = (replies / batched_s) / (replies / single_s)
    return {
        "clients": clients,
        "replies": replies,
        "max_tokens": max_tokens,
        "batched_s": round(batched_s, 3),
        "one_at_a_time_s": round(single_s, 3),
        "batched_replies_per_s": round(replies / batched_s, 3),
        "one_at_a_time_replies_per_s": round(replies / single_s, 3),
        "batched_tokens": sum(tokens for _, tokens in batched.values()),
        "one_at_a_time_tokens": sum(tokens for _, tokens in single.values()),
        "same_replies": batched == single,  # each row samples with its own seed: batching must not change a reply
        "speedup": round(speedup, 2),
        "target": {f"speedup>={TARGET_SPEEDUP:g}": speedup >= TARGET_SPEEDUP},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", nargs="?", type=Path, help="a finished training run (default: train a tiny one)")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests-per-client", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=32)
    args = parser.parse_args(argv)
    if min(args.clients, args.requests_per_client, args.max_tokens) < 1:
        print("serve_throughput.py: error: --clients, --requests-per-client and --max-tokens must be at least 1", file=sys.stderr)
        return 2

    from replica.errors import ReplicaInputError
    from replica.model.run_dir import inspect_run

    try:
        with tempfile.TemporaryDirectory(prefix="replica-servebench-") as scratch:
            run_dir = args.run_dir
            if run_dir is None:
                from tests.helpers import train_tiny

                print("no run dir given: training a tiny run first", file=sys.stderr)
                _, run_dir = train_tiny(Path(scratch))
            inspect_run(run_dir)
            result = benchmark(run_dir, Path(scratch), args.clients, args.requests_per_client, args.max_tokens)
    except ReplicaInputError as err:
        print(f"serve_throughput.py: error: {err}", file=sys.stderr)
        return 2
    print(f"{result['replies']} replies from {result['clients']} concurrent openai clients, max_tokens={result['max_tokens']}")
    print(f"  batched (--max-batch {result['clients']}): {result['batched_replies_per_s']:.2f} replies/s, {result['batched_tokens']} tokens")
    print(f"  one at a time (--max-batch 1): {result['one_at_a_time_replies_per_s']:.2f} replies/s, {result['one_at_a_time_tokens']} tokens")
    print(f"  speedup {result['speedup']:.2f}x (target >= {TARGET_SPEEDUP:g}x); same replies in both modes: {result['same_replies']}")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
