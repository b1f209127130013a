"""Does evaluate.py score a run the same on llama.cpp as on transformers, and how much sooner does it finish?

    python benchmarks/evaluate_engines.py RUN_DIR [--max-examples 150] [--quants q8_0 f16] [--work DIR]

The real `python evaluate.py run_dir=<copy> eval.max_examples=N` runs with `decoding.engine=transformers`, then with
`decoding.engine=llama_cpp decoding.engine_quant=Q` for each quant, each on its own copy of the run folder (made
under a new folder in --work, kept for reading the reports). A llama.cpp copy gets its GGUF files built before its
evaluation starts (a one-time cost per adapter, timed apart). For every metric of both sides (baseline and
fine-tuned) the report says whether each llama.cpp value lies within the transformers value's 95% interval. The
last line printed is JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SIDES = ("baseline", "finetuned")
REFERENCE = "transformers"
LEFT_BEHIND = shutil.ignore_patterns("eval", "checkpoints")  # evaluate.py reads neither; eval/ is what it writes


def copy_run(run_dir: Path, work: Path, name: str) -> Path:
    """A copy of the run folder at `work/name` for one evaluation to write its report into."""
    copy = work / name
    shutil.copytree(run_dir, copy, ignore=LEFT_BEHIND)
    return copy


def build_gguf(copy: Path, quant: str) -> float:
    """Seconds to build the copy's llama.cpp files (adapter on and off) in `<copy>/engine/`, as evaluate.py would."""
    from replica.inference.gguf_cache import run_gguf_paths
    from replica.model.run_dir import inspect_run

    started = time.perf_counter()
    run_gguf_paths(inspect_run(copy), quant, (False, True))
    return time.perf_counter() - started


def evaluate(copy: Path, max_examples: int, overrides: list[str]) -> tuple[float, dict]:
    """(wall seconds, eval/metrics.json) of the real evaluate.py on `copy`."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    command = [sys.executable, str(ROOT / "evaluate.py"), f"run_dir={copy}", f"eval.max_examples={max_examples}", *overrides]
    started = time.perf_counter()
    done = subprocess.run(command, check=False, cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(overrides)}: evaluate.py exited with {done.returncode}: {done.stderr[-3000:]}")
    return seconds, json.loads((copy / "eval" / "metrics.json").read_text(encoding="utf-8"))


def agreement(reference: dict, others: dict[str, dict]) -> dict:
    """Per side and metric: the transformers value and 95% interval, each quant's value and whether it lies inside."""
    table = {}
    for side in SIDES:
        rows = {}
        for metric, interval in reference[side].get("ci", {}).items():
            row = {REFERENCE: reference[side].get(metric), "ci": interval}
            for quant, metrics in others.items():
                value = metrics[side].get(metric)
                row[quant] = value
                row[f"{quant}_within"] = within(value, interval)
            rows[metric] = row
        table[side] = rows
    return table


def within(value: float | None, interval: list | None) -> bool | None:
    """Whether `value` lies in the closed `interval`; None when either is missing (a NaN metric)."""
    if value is None or not interval or None in interval:
        return None
    return interval[0] <= value <= interval[1]


def summary(table: dict, quants: list[str]) -> dict[str, str]:
    """Per quant: "k of n" metric values within the transformers intervals (metrics without a value left out)."""
    counts = {}
    for quant in quants:
        verdicts = [row[f"{quant}_within"] for rows in table.values() for row in rows.values()]
        known = [v for v in verdicts if v is not None]
        counts[quant] = f"{sum(known)} of {len(known)}"
    return counts


def benchmark(run_dir: Path, work: Path, max_examples: int, quants: list[str]) -> dict:
    wall, build, metrics = {}, {}, {}
    copy = copy_run(run_dir, work, REFERENCE)
    wall[REFERENCE], reference = evaluate(copy, max_examples, [f"decoding.engine={REFERENCE}"])
    for quant in quants:
        copy = copy_run(run_dir, work, f"llama_cpp-{quant}")
        build[quant] = round(build_gguf(copy, quant), 1)
        overrides = ["decoding.engine=llama_cpp", f"decoding.engine_quant={quant}"]
        wall[quant], metrics[quant] = evaluate(copy, max_examples, overrides)
    table = agreement(reference, metrics)
    return {
        "run_dir": str(run_dir),
        "work": str(work),
        "max_examples": max_examples,
        "n_examples": reference["meta"]["n_examples"],
        "quants": quants,
        "wall_s": {name: round(seconds, 1) for name, seconds in wall.items()},
        "gguf_build_s": build,
        "speedup": {quant: round(wall[REFERENCE] / wall[quant], 3) for quant in quants},
        "within_interval": summary(table, quants),
        "metrics": table,
    }


def report(result: dict) -> None:
    """One line per metric and side, then the wall times (the JSON follows)."""
    quants = result["quants"]
    print(f"{result['n_examples']} held-out examples; is each llama.cpp value within the transformers 95% interval?")
    print(f"  {'side':<10} {'metric':<28} {'transformers [95% interval]':<34} " + "  ".join(f"{q:>16}" for q in quants))
    for side, rows in result["metrics"].items():
        for metric, row in rows.items():
            interval = "[" + ", ".join(_number(x) for x in row["ci"]) + "]"
            cells = "  ".join(f"{_number(row[q]) + (' yes' if row[f'{q}_within'] else ' NO'):>16}" for q in quants)
            print(f"  {side:<10} {metric:<28} {_number(row[REFERENCE]) + ' ' + interval:<34} {cells}")
    for quant in quants:
        print(f"  llama.cpp {quant}: {result['within_interval'][quant]} values within; evaluate.py "
              f"{result['wall_s'][quant]:.1f} s vs transformers {result['wall_s'][REFERENCE]:.1f} s "
              f"(speedup {result['speedup'][quant]:.2f}x; GGUF built once in {result['gguf_build_s'][quant]:.1f} s)")


def _number(value) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def main(argv: list[str] | None = None) -> int:
    from replica.settings import ENGINE_QUANTS

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path, help="a finished training run (python train.py experiment=smollm2_demo)")
    parser.add_argument("--max-examples", type=int, default=150, help="held-out examples per evaluation (default 150)")
    parser.add_argument("--quants", nargs="+", default=["q8_0", "f16"], choices=ENGINE_QUANTS,
                        help="llama.cpp weights to evaluate (default q8_0 f16)")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()),
                        help="where a new folder holds the run copies and their reports (default: the temp folder)")
    args = parser.parse_args(argv)
    if args.max_examples < 1:
        print("evaluate_engines.py: error: --max-examples must be at least 1", file=sys.stderr)
        return 2

    from replica.model.run_dir import inspect_run
    from replica.task import exit_code

    def run() -> None:
        inspect_run(args.run_dir)
        args.work.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix="replica-evalengines-", dir=args.work))
        result = benchmark(args.run_dir, work, args.max_examples, list(dict.fromkeys(args.quants)))
        report(result)
        print(json.dumps(result))

    return exit_code("evaluate_engines.py", run)


if __name__ == "__main__":
    sys.exit(main())
