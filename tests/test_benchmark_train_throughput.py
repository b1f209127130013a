"""Smoke run of benchmarks/train_throughput.py: both trainings really run, and the JSON summary adds up."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "train_throughput.py"


@pytest.mark.slow
def test_three_step_run_reports_both_sides(tmp_path):
    command = [sys.executable, str(SCRIPT), "--steps", "3", "--batch-size", "4", "--model", "tiny",
               f"data.datasets_dir={tmp_path / 'datasets'}"]
    done = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    result = json.loads(lines[-1])

    assert result["steps"] == 3 and result["batch_size"] == 4
    for side in ("ours", "baseline"):
        assert result[f"{side}_tokens_per_s"] > 0
        assert result[f"{side}_examples_per_s"] > 0
        assert result[f"{side}_seconds"] > 0
        assert 0.0 <= result[f"padding_fraction_{side}"] < 1.0
    assert result["speedup"] == pytest.approx(result["ours_tokens_per_s"] / result["baseline_tokens_per_s"], rel=0.01)
    targets = result["targets"]
    assert set(targets) == {"speedup>=1.5", "padding_fraction_ours<=0.10"}
    assert targets["speedup>=1.5"] == (result["speedup"] >= 1.5)
    assert targets["padding_fraction_ours<=0.10"] == (result["padding_fraction_ours"] <= 0.10)
    # length grouping pads less than random batches of the same examples padded to their longest
    assert result["padding_fraction_ours"] < result["padding_fraction_baseline"]
    assert "tiny-qwen2-" in next(line for line in lines if line.startswith("base model "))  # the --model preset's base
    assert any(line.startswith("ours ") for line in lines) and any(line.startswith("baseline ") for line in lines)
    assert len(list((tmp_path / "datasets").glob("*/train.jsonl"))) == 1  # one content-addressed dataset


def test_an_unknown_model_preset_is_one_line_naming_the_choices(tmp_path):
    done = subprocess.run([sys.executable, str(SCRIPT), "--model", "no-such-preset"], capture_output=True, text=True,
                          cwd=tmp_path, timeout=300)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "no-such-preset" in done.stderr and "smollm2-135m" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
