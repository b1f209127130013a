"""Smoke run of benchmarks/serve_throughput.py: it trains its own tiny run, serves it twice, ends with JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_serve_benchmark_prints_json_last():
    done = subprocess.run(
        [sys.executable, "benchmarks/serve_throughput.py", "--clients", "4", "--requests-per-client", "1", "--max-tokens", "6"],
        cwd=ROOT, capture_output=True, text=True, timeout=1800,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["clients"] == 4 and result["replies"] == 4
    assert result["same_replies"] is True  # the README's promise: batching changes no reply
    assert result["batched_tokens"] == result["one_at_a_time_tokens"] and 4 <= result["batched_tokens"] <= 4 * 6
    assert result["batched_s"] > 0 and result["one_at_a_time_s"] > 0


def test_serve_benchmark_rejects_a_missing_run_dir(tmp_path):
    done = subprocess.run(
        [sys.executable, "benchmarks/serve_throughput.py", str(tmp_path / "nope")],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "nope" in done.stderr and "Traceback" not in done.stderr
