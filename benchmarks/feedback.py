"""Teach it: do corrections stick, and does a continued run beat a fresh one? (issue 25)

    python benchmarks/feedback.py                                   # tiny model, both experiments, last line JSON
    python benchmarks/feedback.py --model smollm2-135m --steps 60 --child-steps 40 --only corrections
    python benchmarks/feedback.py --only continued --steps 48

**Corrections.** A parent run trains on the English sample (`data=english`: Sam writes to Mum as `family`, to Jake and
Priya as `friend`). A simulated owner then asks the served parent (`replica serve`, the real `openai` client) for
replies to N train-split `family` contexts and corrects each through `POST /v1/feedback` to Sam's real reply with a
habit the chats never show (`--habit`, a sign-off emoji). `python train.py from_run=PARENT` continues from the
parent with those corrections. The habit's rate in sampled replies to held-out contexts, per label, is measured
through `replica serve` before (parent) and after (child), with Wilson 95% intervals.

**Continued.** Export A is the first `--old-share` of every chat (what an export a month ago held); export B is the
whole chat (this month's). A parent trains on A; then, for the same steps, a child continues from it with
`data.exports=[B]` (the union, each message once), and a fresh run trains from the base on the same union dataset
(`data.keep_splits_of`: the same splits). Reported: both runs' val loss before their first step, the fresh run's
final val loss, and the first step at which the child's val loss reached it (as a share of the steps).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

ENGLISH = ROOT / "examples" / "english"
TINY_LR = 3e-3  # as benchmarks/label_fidelity.py: the tiny model learns a label's habits within ~100 steps at this rate


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="model preset (default: tiny)")
    parser.add_argument("--steps", type=int, default=96, help="steps of a parent run (and of the fresh run)")
    parser.add_argument("--child-steps", type=int, default=48, help="steps of the run continued with corrections")
    parser.add_argument("--pretrain-steps", type=int, default=None, help="the tiny model's pretraining steps (default: its preset's)")
    parser.add_argument("--lr", type=float, default=None, help=f"learning rate (default: {TINY_LR} on tiny, the preset's otherwise)")
    parser.add_argument("--corrections", type=int, default=40, help="corrections the simulated owner makes")
    parser.add_argument("--label", default="family", help="the label the owner corrects")
    parser.add_argument("--habit", default="xoxo", help="what every correction ends with (absent from the chats)")
    parser.add_argument("--weight", type=float, default=3.0, help="feedback.weight of the continued run")
    parser.add_argument("--lr-scale", type=float, default=None, help="from_run_lr_scale of the continued runs (default: the config's)")
    parser.add_argument("--preference", action="store_true", help="also train the DPO loss (feedback.preference=true)")
    parser.add_argument("--contexts", type=int, default=40, help="held-out contexts per label for the habit rate")
    parser.add_argument("--samples", type=int, default=2, help="sampled replies per held-out context")
    parser.add_argument("--old-share", type=float, default=0.6, help="share of each chat the old export holds")
    parser.add_argument("--only", choices=("corrections", "continued"), help="run one experiment")
    parser.add_argument("--work", type=Path, default=None, help="folder for runs and data (default: a temporary one)")
    return parser.parse_args(argv)


# ---- training through the real CLI --------------------------------------------------------------------------
def common_overrides(args: argparse.Namespace, work: Path, steps: int, val_every: int) -> list[str]:
    overrides = [
        "trainer=cpu", "trainer.max_epochs=-1", f"trainer.max_steps={steps}", "trainer.check_val_every_n_epoch=null",
        f"trainer.val_check_interval={val_every}", "trainer.enable_progress_bar=false",
        "callbacks.stop_sequence_eval.num_samples=4", "callbacks.stop_sequence_eval.max_new_tokens=24",
        f"paths.data_dir={work / 'data'}", f"paths.log_dir={work / 'logs'}", f"paths.cache_dir={work / 'cache'}",
    ]
    if args.model:
        overrides.append(f"model={args.model}")
    if args.pretrain_steps is not None:
        overrides.append(f"model.tiny.pretrain_steps={args.pretrain_steps}")
    lr = args.lr if args.lr is not None else (TINY_LR if args.model in (None, "tiny") else None)
    if lr is not None:
        overrides.append(f"optimizer.lr={lr}")
    return overrides


def lr_scale(args: argparse.Namespace) -> list[str]:
    return [] if args.lr_scale is None else [f"from_run_lr_scale={args.lr_scale}"]


def train(run_dir: Path, overrides: Sequence[str]) -> tuple[dict, float]:
    """`python train.py` into `run_dir`; its summary and minutes taken (a finished run in `run_dir`, as a rerun with
    the same --work finds it, is kept: 0 minutes)."""
    if (run_dir / "summary.json").is_file():
        return json.loads((run_dir / "summary.json").read_text(encoding="utf-8")), 0.0
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "train.py", *overrides, f"hydra.run.dir={run_dir}"], cwd=ROOT,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"training {run_dir.name} failed:\n{done.stderr[-3000:]}")
    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    return summary, (time.perf_counter() - started) / 60


def val_curve(run_dir: Path) -> list[tuple[int, float]]:
    """(step, val loss) of every validation of a run, in order (step 0: before training)."""
    rows = []
    for path in sorted(run_dir.rglob("metrics.csv")):
        with open(path, encoding="utf-8") as handle:
            rows += [(int(row["step"]), float(row["val/loss"])) for row in csv.DictReader(handle) if row.get("val/loss")]
    return rows


# ---- serving and asking through the openai client -----------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def served(run_dir: Path) -> Iterator[tuple[str, str]]:
    """`replica serve RUN` on a free local port; (base URL, API key) while it runs."""
    port, key = free_port(), secrets.token_hex(16)
    server = subprocess.Popen([sys.executable, "-m", "replica.cli", "serve", str(run_dir), "--port", str(port),
                               "--api-key", key], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 600
        while not _healthy(url):
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"replica serve did not start:\n{server.stderr.read()[-3000:]}")
            time.sleep(0.5)
        yield url, key
    finally:
        server.terminate()
        server.wait(timeout=60)


def _healthy(url: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(url + "/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def as_messages(context: Sequence[dict]) -> list[dict]:
    return [{"role": "assistant" if turn["role"] == "me" else "user", "content": turn["text"]} for turn in context]


def replies(client, examples: Sequence[dict], label: str, samples: int) -> list[str]:
    """`samples` sampled replies of the served run to each example's context, addressed to `label`."""
    found = []
    for index, example in enumerate(examples):
        for sample in range(samples):
            answer = client.chat.completions.create(model="replica", messages=as_messages(example["context"]),
                                                    seed=1000 * index + sample, max_tokens=48,
                                                    extra_body={"relationship": label})
            found.append(answer.choices[0].message.content or "")
    return found


def wilson(hits: int, total: int) -> tuple[float, float]:
    """95% Wilson score interval of a rate."""
    if total == 0:
        return (0.0, 1.0)
    z, rate = 1.96, hits / total
    centre = (rate + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(rate * (1 - rate) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return (round(max(0.0, centre - half), 3), round(min(1.0, centre + half), 3))


def habit_rates(run_dir: Path, held_out: dict[str, list[dict]], args: argparse.Namespace) -> dict[str, dict]:
    """Per label: the share of sampled replies to held-out contexts that show the habit, with its interval."""
    from openai import OpenAI

    rates = {}
    with served(run_dir) as (url, key):
        client = OpenAI(base_url=url + "/v1", api_key=key, max_retries=0, timeout=300)
        for label, examples in held_out.items():
            said = replies(client, examples, label, args.samples)
            hits = sum(args.habit in reply for reply in said)
            rates[label] = {"rate": round(hits / max(len(said), 1), 3), "ci95": wilson(hits, len(said)), "replies": len(said)}
    return rates


def correct(run_dir: Path, examples: Sequence[dict], args: argparse.Namespace) -> int:
    """The simulated owner: asks the served run for a reply to each context and corrects it (POST /v1/feedback) to
    the real reply with the habit; how many corrections were stored."""
    import urllib.request

    from openai import OpenAI

    stored = 0
    with served(run_dir) as (url, key):
        client = OpenAI(base_url=url + "/v1", api_key=key, max_retries=0, timeout=300)
        for index, example in enumerate(examples):
            reply = client.chat.completions.create(model="replica", messages=as_messages(example["context"]),
                                                   seed=index, max_tokens=48, extra_body={"relationship": args.label})
            body = {"messages": as_messages(example["context"]), "relationship": args.label,
                    "reply": reply.choices[0].message.content or "…",
                    "correction": f"{example['target']} {args.habit}"}
            request = urllib.request.Request(url + "/v1/feedback", data=json.dumps(body).encode(), method="POST",
                                             headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=60) as response:
                stored += response.status == 201
    return stored


def split_rows(run_dir: Path, split: str) -> list[dict]:
    from replica.atomic import read_jsonl
    from replica.prepare.pipeline import run_dataset

    return read_jsonl(run_dataset(run_dir, log=lambda line: None).split_path(split))


def by_label(rows: Sequence[dict], limit: int) -> dict[str, list[dict]]:
    grouped: dict[str, list[dict]] = {}
    for row in rows:
        grouped.setdefault(row.get("relationship") or "other", []).append(row)
    return {label: found[:limit] for label, found in sorted(grouped.items())}


# ---- the two experiments ------------------------------------------------------------------------------------
def corrections_experiment(args: argparse.Namespace, work: Path) -> dict:
    base = [*common_overrides(args, work, args.steps, args.steps), "data=english"]
    parent = work / "runs" / "parent"
    _, parent_minutes = train(parent, base)
    held_out = by_label(split_rows(parent, "test"), args.contexts)
    before = habit_rates(parent, held_out, args)
    family = [row for row in split_rows(parent, "train") if row.get("relationship") == args.label][: args.corrections]
    started = time.perf_counter()
    stored = correct(parent, family, args)
    correcting_minutes = (time.perf_counter() - started) / 60
    child = work / "runs" / "child"
    child_overrides = [f"from_run={parent}", f"trainer.max_steps={args.child_steps}",
                       f"trainer.val_check_interval={args.child_steps}", f"feedback.weight={args.weight}",
                       f"feedback.preference={str(args.preference).lower()}", *lr_scale(args)]
    summary, child_minutes = train(child, child_overrides)
    after = habit_rates(child, held_out, args)
    return {
        "label": args.label, "habit": args.habit, "corrections": stored, "feedback_examples": summary["feedback_examples"],
        "habit_rate_before": before, "habit_rate_after": after,
        "minutes": {"parent": round(parent_minutes, 1), "correcting": round(correcting_minutes, 1),
                    "continued": round(child_minutes, 1)},
    }


def old_export(folder: Path, share: float) -> Path:
    """Each chat of the English sample cut to its first `share` of lines: the export of an earlier month."""
    folder.mkdir(parents=True, exist_ok=True)
    for chat in sorted(ENGLISH.glob("*.txt")):
        lines = chat.read_text(encoding="utf-8").splitlines(keepends=True)
        (folder / chat.name).write_text("".join(lines[: int(len(lines) * share)]), encoding="utf-8")
    return folder


def continued_experiment(args: argparse.Namespace, work: Path) -> dict:
    val_every = max(1, args.steps // 12)
    base = [*common_overrides(args, work, args.steps, val_every), "data=english"]
    old = old_export(work / "exports" / "a_month_ago", args.old_share)
    parent = work / "runs" / "parent_old"
    _, parent_minutes = train(parent, [*base, f"data.exports=[{old}]"])
    child = work / "runs" / "continued"
    _, child_minutes = train(child, [f"from_run={parent}", f"data.exports=[{ENGLISH}]",
                                     f"trainer.val_check_interval={val_every}", *lr_scale(args)])
    recorded = json.loads((child / "dataset.json").read_text(encoding="utf-8"))["data"]
    fresh = work / "runs" / "fresh"
    _, fresh_minutes = train(fresh, [*base, f"data.exports=[{','.join(recorded['exports'])}]",
                                     f"data.keep_splits_of={recorded['keep_splits_of']}"])
    same_dataset = json.loads((fresh / "dataset.json").read_text())["key"] == json.loads((child / "dataset.json").read_text())["key"]
    continued, scratch = val_curve(child), val_curve(fresh)
    target = scratch[-1][1]
    reached = next((step for step, loss in continued if loss <= target), None)
    return {
        "same_dataset": same_dataset,
        "initial_val_loss": {"continued": continued[0][1], "fresh": scratch[0][1]},
        "final_val_loss": {"continued": continued[-1][1], "fresh": target},
        "steps": args.steps,
        "continued_reached_fresh_final_at_step": reached,
        "share_of_steps": None if reached is None else round(reached / args.steps, 3),
        "minutes": {"parent": round(parent_minutes, 1), "continued": round(child_minutes, 1),
                    "fresh": round(fresh_minutes, 1)},
    }


def main(argv: Sequence[str]) -> None:
    args = parse_args(argv)
    import tempfile

    work = args.work or Path(tempfile.mkdtemp(prefix="replica-feedback-"))
    results = {"model": args.model or "tiny", "work": str(work)}
    if args.only in (None, "corrections"):
        results["corrections"] = corrections_experiment(args, work / "corrections")
        print(json.dumps(results["corrections"], ensure_ascii=False), flush=True)
    if args.only in (None, "continued"):
        results["continued"] = continued_experiment(args, work / "continued")
        print(json.dumps(results["continued"], ensure_ascii=False), flush=True)
    print(json.dumps(results, ensure_ascii=False))


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main(sys.argv[1:])
