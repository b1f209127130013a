"""Time and peak memory of `replica parse` on oversized input, against a baseline measured in the same run.

    python benchmarks/parse_limits.py                   # last line JSON

Cases (every one a fresh `python -m replica.cli parse` process; peak RSS read from the kernel's VmHWM):
- a zip of 500 one-MiB chat members (~500 MiB uncompressed): refused by the run's input limit before inflating,
  against the baseline of parsing ONE such member on its own;
- a WhatsApp file of 2,000,000 one-line messages: refused by the message limit (default 1,000,000), against the
  same file parsed whole with the limit raised (the memory the limit saves).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROBE = (
    "import re, sys\n"
    "from replica.cli import main\n"
    "try:\n    code = main(sys.argv[1:])\n"
    "finally:\n"
    "    print(re.search(r'VmHWM:\\s*(\\d+)', open('/proc/self/status').read()).group(1), file=sys.stderr)\n"
    "sys.exit(code)\n"
)


def chat_lines(count: int) -> str:
    return "".join(
        f"{1 + i % 28:02d}/03/2021, {i % 24:02d}:{i % 60:02d} - {'Anna Verdi' if i % 2 else 'Marco Bianchi'}: "
        f"messaggio numero {i}\n"
        for i in range(count)
    )


def measure(*args: str) -> tuple[float, int, int]:
    """(seconds, peak RSS MiB, exit code) of one `replica parse` process."""
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", PROBE, "parse", *args], cwd=ROOT, capture_output=True, text=True,
                            env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    seconds = time.perf_counter() - start
    peak = int(re.findall(r"^(\d+)$", result.stderr, re.MULTILINE)[-1]) // 1024
    return seconds, peak, result.returncode


def main() -> None:
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        member = (chat_lines(25_000) * 2).encode()[: 1024 * 1024]
        one = folder / "one_member.txt"
        one.write_bytes(member)
        archive = folder / "500_members.zip"
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
            for index in range(500):
                zf.writestr(f"chat_{index:03}.txt", member)
        rows["one 1 MiB member (baseline)"] = measure(str(one))
        rows["zip of 500 x 1 MiB (refused)"] = measure(str(archive))
        big = folder / "2M_messages.txt"
        big.write_text(chat_lines(2_000_000), encoding="utf-8")
        rows["2M messages, limit raised (baseline)"] = measure("--max-messages", "3000000", str(big))
        rows["2M messages, default limit (refused)"] = measure(str(big))
    for name, (seconds, peak, code) in rows.items():
        print(f"{name:40s} exit {code}  {seconds:6.2f} s  {peak:6d} MiB peak RSS")
    zip_s, zip_mib, _ = rows["zip of 500 x 1 MiB (refused)"]
    one_s, one_mib, _ = rows["one 1 MiB member (baseline)"]
    full_s, full_mib, _ = rows["2M messages, limit raised (baseline)"]
    cut_s, cut_mib, _ = rows["2M messages, default limit (refused)"]
    summary = {
        "zip_refused_time_vs_one_member": round(zip_s / one_s, 2),
        "zip_refused_rss_vs_one_member": round(zip_mib / one_mib, 2),
        "message_limit_time_vs_full_parse": round(cut_s / full_s, 2),
        "message_limit_rss_vs_full_parse": round(cut_mib / full_mib, 2),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
