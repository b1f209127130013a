"""Smoke run of benchmarks/mask_scaling.py on 8 KB -> 32 KB messages: one line per PII kind, every ratio in bounds."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KINDS = {"email", "obfuscated_email", "url", "iban", "card", "phone", "name"}


def test_mask_scaling_benchmark_prints_a_ratio_per_kind():
    done = subprocess.run(
        [sys.executable, "benchmarks/mask_scaling.py", "--small", "8192", "--large", "32768", "--repeats", "3"],
        cwd=ROOT, capture_output=True, text=True, timeout=600, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]  # 1: some kind grew more than 6x for 4x
    rows = dict(re.findall(r"^(\w+)\s.*ratio\s+([\d.]+)x \(input 4x\)$", done.stdout, re.MULTILINE))
    assert set(rows) == KINDS, done.stdout
    # a quadratic pattern would grow ~16x for 4x the input; linear ones stay near 4 (the script fails above 6)
    assert all(float(ratio) < 6 for ratio in rows.values()), done.stdout
