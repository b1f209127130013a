"""benchmarks/over_masking.py on a small export: everyday words taken as names are counted, kept ones reported."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINES = [
    "Rosa Neri: ho comprato una maglietta rosa per la festa",
    "Marco Bianchi: bella! di che colore sono le scarpe?",
    "Rosa Neri: rosa anche quelle, e domani vado al mare",
    "Marco Bianchi: Rosa sei fantastica, ci vediamo domani",
]


def test_over_masking_counts_everyday_words_masked_as_names(tmp_path):
    export = tmp_path / "WhatsApp Chat with Rosa Neri.txt"
    export.write_text(
        "\n".join(f"0{day + 1}/03/2024, 18:0{day} - {line}" for day, line in enumerate(LINES * 3)) + "\n",
        encoding="utf-8",
    )
    done = subprocess.run(
        [sys.executable, "benchmarks/over_masking.py", str(export), "--me", "Marco Bianchi"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    kept = int(re.search(r"kept as words: (\d+)", done.stdout).group(1))
    over = int(re.search(r"as names\): (\d+)", done.stdout).group(1))
    # "maglietta rosa" and "rosa anche" stay (3 copies each); the capitalized "Rosa sei" is counted (3 copies)
    assert (kept, over) == (6, 3), done.stdout
