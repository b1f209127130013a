"""Smoke run of benchmarks/parse_speed.py on a small export: both parsers run and see the same messages."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MESSAGES = 2000
HEADER = re.compile(r"^\d{2}/\d{2}/\d{4}, \d{2}:\d{2} - ", re.MULTILINE)  # Android, Italian locale
SENDER = re.compile(r"^\d{2}/\d{2}/\d{4}, \d{2}:\d{2} - [^:\n]+: ", re.MULTILINE)


def test_parse_speed_benchmark_times_both_parsers_on_the_same_messages(tmp_path):
    done = subprocess.run(
        [sys.executable, "benchmarks/parse_speed.py", "--messages", str(MESSAGES), "--repeats", "1",
         "--out", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=600, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    result = json.loads(done.stdout.splitlines()[-1])
    (export,) = tmp_path.glob("*.txt")
    text = export.read_text(encoding="utf-8")
    # the generated export: every header is one message; the sender-less ones are system lines
    assert len(SENDER.findall(text)) == MESSAGES and len(HEADER.findall(text)) > MESSAGES
    assert result["messages"] == result["whatstk_messages"] == MESSAGES and result["counts_match"] is True
    assert result["replica_messages"] == len(HEADER.findall(text))
    assert (tmp_path / "datasets-0").is_dir()  # prepare ran and published a dataset
    for key in ("whatstk_s", "replica_parse_s", "replica_prepare_s", "whatstk_cpu_s", "replica_parse_cpu_s"):
        assert result[key] > 0, key
    # even on a small export Replica parses faster than whatstk, whose start-up alone imports pandas
    assert result["parse_speedup"] > 1 and result["parse_speedup_cpu"] > 1
    assert re.search(r"^replica parse .*x faster \(CPU time: .*x\)$", done.stdout, re.MULTILINE)
