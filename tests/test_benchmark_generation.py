"""Smoke run of benchmarks/generation_speed.py: it trains its own tiny run, times both modes, ends with JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_generation_benchmark_prints_json_last():
    done = subprocess.run(
        [sys.executable, "benchmarks/generation_speed.py", "--prompts", "8", "--max-new-tokens", "8", "--batch-size", "4"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["prompts"] == 8 and result["batch_size"] == 4
    assert result["batched_s"] > 0 and result["one_by_one_s"] > 0
    assert result["speedup"] == pytest.approx(result["one_by_one_s"] / result["batched_s"], rel=0.02)
    assert isinstance(result["target"]["speedup>=3"], bool)
    assert result["same_replies"] == 1.0  # the README's "same replies": batching changes no greedy reply
    assert result["batched_tokens"] == result["one_by_one_tokens"] and 0 < result["one_by_one_tokens"] <= 8 * 8
    assert "speedup" in done.stdout.splitlines()[-2]


def test_generation_benchmark_rejects_a_missing_run_dir(tmp_path):
    done = subprocess.run(
        [sys.executable, "benchmarks/generation_speed.py", str(tmp_path / "nope")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr.strip().startswith("generation_speed.py: error:") and "Traceback" not in done.stderr
