"""Peak memory of the reply loss: chunked LM head + cross-entropy against full logits, in one run.

    python benchmarks/train_memory.py                     # SmolLM2 step + 7B head slice, last line JSON
    python benchmarks/train_memory.py --skip-smollm2      # only the 7B head slice (no model package needed)

Each measurement runs in its own fresh process (peak RSS only grows within a process), twice: `chunked`
(`replica.model.loss.reply_token_nll`, what training and evaluation use: the 7B slice calls its fused
linear + cross-entropy directly) and `full` (the model's full logits,
then cross-entropy: what HF's `model(**batch).loss` does). Reported per side: the peak RSS of the process, the
RSS growth during the measured step over the RSS just before it (the "logits part": activations, logits,
their gradients), the fastest step time; and the ratios. A third process runs both modes on the same weights
and batch and reports the max |difference| of the loss and of every gradient.

1. **SmolLM2-135M-Instruct training step**, batch 8 x 512 tokens (real sample examples, packed to 512 tokens,
   loss on every token after the first 64 of a row: more supervised positions than chat replies ever have),
   the real path: 4-bit NF4 base + LoRA of `conf/lora`, gradient checkpointing, forward + backward.
2. **A shape-faithful slice of a 7B head** (DeepSeek-R1-Distill-Qwen-7B / Qwen2.5-7B: vocabulary 152,064 x
   hidden 3,584, bf16): random hidden states of batch 8 x 512 through a random bf16 head into the loss, and back
   to the hidden states. Only the head differs from the 7B; the decoder is the same for both sides.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

BATCH, SEQ, PROMPT = 8, 512, 64
HEAD_7B = {"vocab": 152_064, "hidden": 3_584}
MEMORY_TARGET, TIME_TARGET, EQUAL_TOL = 4.0, 1.2, 1e-5


def rss_mib() -> float:
    """Current resident set size of this process."""
    with open("/proc/self/statm", encoding="ascii") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(step, repeats: int) -> dict[str, Any]:
    """Run `step()` `repeats` times; peak RSS growth over the RSS just before the first run, fastest time."""
    import gc

    gc.collect()
    before = rss_mib()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        loss, _ = step()
        times.append(time.perf_counter() - started)
    return {"rss_before_mib": round(before, 1), "peak_rss_mib": round(peak_rss_mib(), 1),
            "step_growth_mib": round(peak_rss_mib() - before, 1), "seconds": round(min(times), 3), "loss": loss}


def equality(steps: dict) -> dict[str, float]:
    """Both modes on the same weights and batch in one process: max |difference| of the loss and every gradient."""
    loss_c, grads_c = steps["chunked"]()
    loss_f, grads_f = steps["full"]()
    grad_diff = max(float((a - b).abs().max()) for a, b in zip(grads_c, grads_f))
    return {"loss_abs_diff": abs(loss_c - loss_f), "grad_max_abs_diff": grad_diff}


# ---- the two workloads: each builds its inputs once and returns one step per mode ---------------------------
def smollm2_steps() -> dict:
    import torch

    from replica.config import compose
    from replica.model.base_model import (
        disable_cpu_inference_repacking, load_base_model, load_tokenizer, resolve_model_path, wrap_with_lora,
    )
    from replica.model.loss import full_logits_token_nll, reply_token_nll

    cfg = compose("train", ["model=smollm2-135m", "trainer=cpu"])
    base_path = resolve_model_path(cfg.model, list, cfg.paths.cache_dir)
    tokenizer = load_tokenizer(base_path, cfg.model, cfg.data.format)
    torch.manual_seed(0)
    base = load_base_model(base_path, cfg.model, cfg.quant, "cpu")
    disable_cpu_inference_repacking(base)
    model = wrap_with_lora(base, cfg.lora, [], quantized=True, gradient_checkpointing=cfg.gradient_checkpointing)
    model.train()
    batch = sample_batch(tokenizer)
    lora = [p for p in model.parameters() if p.requires_grad]
    losses = {"chunked": lambda: reply_token_nll(model, *batch)[0], "full": lambda: full_logits_token_nll(model, *batch)}

    def step_of(mode: str):
        def step():
            torch.manual_seed(0)  # the same LoRA dropout masks for both modes
            for p in lora:
                p.grad = None
            loss = losses[mode]().mean()
            loss.backward()
            return float(loss), [p.grad.detach().clone() for p in lora]
        return step

    return {mode: step_of(mode) for mode in losses}


def sample_batch(tokenizer):
    """BATCH rows of SEQ tokens of the bundled sample's text; labels on every token after the first PROMPT."""
    import torch

    text = "\n".join(path.read_text(encoding="utf-8") for path in sorted((ROOT / "examples" / "exports").rglob("*.txt")))
    ids = tokenizer(text, add_special_tokens=False)["input_ids"][: BATCH * SEQ]
    input_ids = torch.tensor(ids, dtype=torch.long).view(BATCH, SEQ)
    labels = input_ids.clone()
    labels[:, :PROMPT] = -100
    return input_ids, torch.ones_like(input_ids), labels


def head7b_steps() -> dict:
    import torch

    from replica.model.loss import CHUNK_TOKENS, FusedLinearCrossEntropy

    torch.manual_seed(0)
    head = torch.nn.Linear(HEAD_7B["hidden"], HEAD_7B["vocab"], bias=False, dtype=torch.bfloat16).requires_grad_(False)
    torch.nn.init.normal_(head.weight, std=0.02)
    hidden = torch.randn(BATCH, SEQ, HEAD_7B["hidden"], dtype=torch.bfloat16).requires_grad_(True)
    targets = torch.randint(0, HEAD_7B["vocab"], (BATCH * SEQ,))

    def chunked_loss():
        states = hidden.view(-1, HEAD_7B["hidden"])
        return FusedLinearCrossEntropy.apply(states, head.weight, head.bias, targets, CHUNK_TOKENS).mean()

    def full_loss():
        logits = head(hidden).float()
        return torch.nn.functional.cross_entropy(logits.view(-1, HEAD_7B["vocab"]), targets)

    def step_of(loss_fn):
        def step():
            hidden.grad = None
            loss = loss_fn()
            loss.backward()
            return float(loss), [hidden.grad.detach().clone()]
        return step

    return {"chunked": step_of(chunked_loss), "full": step_of(full_loss)}


SIDES = {"smollm2": smollm2_steps, "head7b": head7b_steps}


def run_side(name: str, mode: str, repeats: int) -> dict[str, Any]:
    """One side in a fresh interpreter; its last stdout line is the JSON result."""
    command = [sys.executable, __file__, "--side", name, "--mode", mode, "--repeats", str(repeats)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        sys.exit(f"train_memory: the {name}/{mode} side failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def compare(chunked: dict, full: dict, equal: dict) -> dict[str, Any]:
    return {
        "chunked": chunked, "full": full, **equal,
        "logits_memory_ratio": round(full["step_growth_mib"] / max(chunked["step_growth_mib"], 1.0), 2),
        "peak_rss_ratio": round(full["peak_rss_mib"] / chunked["peak_rss_mib"], 2),
        "time_ratio": round(chunked["seconds"] / full["seconds"], 3),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=2, help="measured steps per side (time: the fastest)")
    parser.add_argument("--skip-smollm2", action="store_true", help="only the 7B head slice")
    parser.add_argument("--side", choices=sorted(SIDES), help=argparse.SUPPRESS)
    parser.add_argument("--mode", choices=("chunked", "full", "equal"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.side:
        from replica.model.memory import return_freed_buffers_to_the_system

        return_freed_buffers_to_the_system()  # as train.py does, for both modes
        steps = SIDES[args.side]()
        print(json.dumps(equality(steps) if args.mode == "equal" else measure(steps[args.mode], args.repeats)), flush=True)
        return {}
    names = ["head7b"] if args.skip_smollm2 else ["smollm2", "head7b"]
    result: dict[str, Any] = {}
    for name in names:
        sides = {mode: run_side(name, mode, args.repeats) for mode in ("chunked", "full", "equal")}
        result[name] = compare(sides["chunked"], sides["full"], sides["equal"])
        r = result[name]
        print(f"{name:8} logits part {r['full']['step_growth_mib']:8.0f} -> {r['chunked']['step_growth_mib']:6.0f} MiB "
              f"({r['logits_memory_ratio']:.1f}x less), peak RSS {r['full']['peak_rss_mib']:.0f} -> "
              f"{r['chunked']['peak_rss_mib']:.0f} MiB, step time x{r['time_ratio']:.2f}, "
              f"|d loss| {r['loss_abs_diff']:.1e}, max |d grad| {r['grad_max_abs_diff']:.1e}", flush=True)
    result["targets"] = {
        f"logits_memory_ratio>={MEMORY_TARGET}": all(result[n]["logits_memory_ratio"] >= MEMORY_TARGET for n in names),
        f"time_ratio<={TIME_TARGET}": all(result[n]["time_ratio"] <= TIME_TARGET for n in names),
        f"equal_within_{EQUAL_TOL}": all(max(result[n]["loss_abs_diff"], result[n]["grad_max_abs_diff"]) <= EQUAL_TOL
                                         for n in names),
    }
    print(json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    main()
