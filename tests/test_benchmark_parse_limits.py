"""Smoke run of benchmarks/parse_limits.py with small sizes and limits: refused runs stop early and small."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_parse_limits_benchmark_refuses_past_the_limits_with_less_memory():
    done = subprocess.run(
        [sys.executable, "benchmarks/parse_limits.py", "--members", "4", "--max-input-mib", "2",
         "--messages", "20000", "--max-messages", "1000"],
        cwd=ROOT, capture_output=True, text=True, timeout=600, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    result = json.loads(done.stdout.splitlines()[-1])
    assert result["exit_codes"] == {"one_member": 0, "zip_refused": 2, "big_file_whole": 0, "big_file_refused": 2}
    # refused before inflating / before parsing the whole file: less memory than the baselines
    assert 0 < result["zip_refused_rss_vs_one_member"] < 1
    assert 0 < result["message_limit_rss_vs_full_parse"] < 1
    assert result["zip_refused_time_vs_one_member"] > 0 and result["message_limit_time_vs_full_parse"] > 0
    lines = done.stdout.splitlines()
    assert len(lines) == 5 and "zip of 4 x 1 MiB (refused)" in lines[1] and "exit 2" in lines[1]
