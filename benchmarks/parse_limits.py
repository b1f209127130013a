"""Time and peak memory of `replica parse` on oversized input, against a baseline measured in the same run.

    python benchmarks/parse_limits.py                   # last line JSON
    python benchmarks/parse_limits.py --members 4 --max-input-mib 2 --messages 3000 --max-messages 1000  # a quick run

Cases (every one a fresh `python -m replica.cli parse` process; peak RSS read from the kernel's VmHWM):
- a zip of 500 one-MiB chat members (~500 MiB uncompressed): refused by the run's input limit before inflating,
  against the baseline of parsing ONE such member on its own;
- a WhatsApp file of 2,000,000 one-line messages: refused by the message limit (default 1,000,000), against the
  same file parsed whole with the limit raised (the memory the limit saves).
"""

from __future__ import annotations

import argparse
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=500, help="one-MiB chat members in the zip")
    parser.add_argument("--messages", type=int, default=2_000_000, help="one-line messages in the big WhatsApp file")
    parser.add_argument("--max-input-mib", type=int, help="limit given to the refused zip run (default: the config's)")
    parser.add_argument("--max-messages", type=int,
                        help="limit given to the refused big-file run (default: the config's)")
    args = parser.parse_args(argv)
    zip_limit = ["--max-input-mib", str(args.max_input_mib)] if args.max_input_mib else []
    message_limit = ["--max-messages", str(args.max_messages)] if args.max_messages else []
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        member = (chat_lines(25_000) * 2).encode()[: 1024 * 1024]
        one = folder / "one_member.txt"
        one.write_bytes(member)
        archive = folder / f"{args.members}_members.zip"
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
            for index in range(args.members):
                zf.writestr(f"chat_{index:03}.txt", member)
        rows["one_member"] = measure(str(one))
        rows["zip_refused"] = measure(*zip_limit, str(archive))
        big = folder / "big.txt"
        big.write_text(chat_lines(args.messages), encoding="utf-8")
        rows["big_file_whole"] = measure("--max-messages", str(args.messages + 1), str(big))
        rows["big_file_refused"] = measure(*message_limit, str(big))
    names = {
        "one_member": "one 1 MiB member (baseline)",
        "zip_refused": f"zip of {args.members} x 1 MiB (refused)",
        "big_file_whole": f"{args.messages:,} messages, limit raised (baseline)",
        "big_file_refused": f"{args.messages:,} messages, {'given' if message_limit else 'default'} limit (refused)",
    }
    for key, (seconds, peak, code) in rows.items():
        print(f"{names[key]:45s} exit {code}  {seconds:6.2f} s  {peak:6d} MiB peak RSS")
    zip_s, zip_mib, _ = rows["zip_refused"]
    one_s, one_mib, _ = rows["one_member"]
    full_s, full_mib, _ = rows["big_file_whole"]
    cut_s, cut_mib, _ = rows["big_file_refused"]
    summary = {
        "zip_refused_time_vs_one_member": round(zip_s / one_s, 2),
        "zip_refused_rss_vs_one_member": round(zip_mib / one_mib, 2),
        "message_limit_time_vs_full_parse": round(cut_s / full_s, 2),
        "message_limit_rss_vs_full_parse": round(cut_mib / full_mib, 2),
        "exit_codes": {key: code for key, (_, _, code) in rows.items()},
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
