"""GGUF export per quant: time, file size, logit difference, clean-stop rate before/after, llama.cpp vs Replica speed.

    python benchmarks/export_gguf.py RUN_DIR [--quants f16 q8_0 q4_0] [--prompts 32] [--max-new-tokens 64]

RUN_DIR is a finished run (e.g. a SmolLM2 run: `python train.py model=smollm2-135m ...`). The run is loaded and
merged once (timed), then each quant is written (timed, sized) to a temporary folder. On the run's test-split
contexts (a seeded sample), with `replica chat`'s sampling (temperature 0.8, top-p 0.95): the clean-stop rate of
Replica's generation on the merged model and of llama.cpp's on each file (stopping only where llama.cpp ends
generation), both one prompt at a time on one thread, so their tokens/s compare; and the max |logit difference|
to the merged model on the prompts, in llama.cpp and loaded back by transformers. The last line printed is JSON.
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

QUANTS = ("f16", "q8_0", "q4_0")
LOGIT_PROMPTS = 8


def benchmark(run_dir: Path, quants: list[str], prompts: int, max_new_tokens: int, seed: int) -> dict:
    import torch

    from replica.export.proof import (
        after_export,
        before_export,
        llama_cpp_logit_diff,
        test_contexts,
        transformers_logit_diff,
    )
    from replica.export.source import load_source
    from replica.gguf.gguf_file import write_gguf
    from replica.inference.jobs import Sampling

    torch.set_num_threads(1)
    started = time.perf_counter()
    source = load_source(run_dir)
    load_s = time.perf_counter() - started
    contexts = test_contexts(run_dir, prompts, seed)
    logit_prompts = [source.formatter.prompt_ids(c) for c in contexts[:LOGIT_PROMPTS]]
    sampling = Sampling(do_sample=True, temperature=0.8, top_p=0.95, max_new_tokens=max_new_tokens, seed=seed)
    before = before_export(source, contexts, sampling)
    result = {"run": run_dir.name, "architecture": source.model.config.model_type, "format": source.formatter.style,
              "prompts": len(contexts), "load_and_merge_s": round(load_s, 2),
              "replica": {"clean_stop_rate": before.clean_stop_rate, "tokens_per_s": round(before.tokens_per_s, 1)},
              "quants": {}}
    with tempfile.TemporaryDirectory(prefix="replica-export-bench-") as folder:
        for quant in quants:
            path = Path(folder) / f"replica-{quant}.gguf"
            started = time.perf_counter()
            write_gguf(source.model, source.formatter, path, quant, name=source.name, chat_template=source.chat_template)
            write_s = time.perf_counter() - started
            after = after_export(path, source.formatter, contexts, sampling)
            result["quants"][quant] = {
                "write_s": round(write_s, 2),
                "size_mb": round(path.stat().st_size / 1e6, 1),
                "clean_stop_rate": after.clean_stop_rate,
                "llama_cpp_tokens_per_s": round(after.tokens_per_s, 1),
                "speed_ratio": round(after.tokens_per_s / max(before.tokens_per_s, 1e-9), 2),
                "max_logit_diff_llama_cpp": round(llama_cpp_logit_diff(source, path, logit_prompts), 5),
                "max_logit_diff_transformers": round(transformers_logit_diff(source, path, logit_prompts), 5),
            }
            print(f"{quant}: {json.dumps(result['quants'][quant])}", flush=True)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--quants", nargs="+", choices=QUANTS, default=list(QUANTS))
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    result = benchmark(args.run_dir, args.quants, args.prompts, args.max_new_tokens, args.seed)
    before = result["replica"]["clean_stop_rate"]
    for quant, row in result["quants"].items():
        print(f"{quant}: clean stop {before:.2f} -> {row['clean_stop_rate']:.2f}, {row['size_mb']} MB in "
              f"{row['write_s']} s, llama.cpp {row['speed_ratio']}x Replica's tokens/s, max |dlogit| "
              f"{row['max_logit_diff_llama_cpp']} (llama.cpp) / {row['max_logit_diff_transformers']} (transformers)")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
