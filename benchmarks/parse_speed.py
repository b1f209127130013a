"""Parse/prepare speed of Replica against whatstk's auto-detecting WhatsApp parser, whole processes timed.

    python benchmarks/parse_speed.py                       # 70,000 messages: best-of-3 wall clock, last line JSON
    python benchmarks/parse_speed.py --messages 1000000 --memory   # peak RSS of parse/prepare at N/4 and N

The export is invented and generated afresh (deterministic seed): an Italian-locale Android group chat with
several senders (one is the user, Marco Bianchi), multi-line messages, media, deleted/edited messages, emoji,
phone numbers, e-mails and links, in Italian and English, spread over months in sessions.
Every timing runs a fresh interpreter (`sys.executable`), so start-up and imports count for both tools. Besides the
wall clock, each process's CPU time (user + system, from the kernel) is reported: on a busy machine it is the steadier
of the two.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SEED = 7
ME = "Marco Bianchi"
SENDERS = {ME: 34, "Luca Ferri": 22, "Sara Conti": 16, "~ Giorgio": 12, "Léa Martin": 10, "+39 347 555 0199": 6}
CHAT = "Calcetto e dintorni"
REPEATS = 3

ITALIAN = [
    "ciao raga", "ci sei stasera?", "ahahah troppo forte 😂", "vabbè dai", "a che ora ci vediamo?",
    "sono in ritardo di dieci minuti, scusate", "chi porta le birre?", "ieri partita assurda 🔥",
    "domani lavoro presto, passo", "top!!", "tipo alle nove va bene?", "nooo davvero?", "ok ci sto",
    "qualcuno ha visto le mie chiavi?", "piove da stamattina, che palle", "prenoto io da Gino per otto",
    "grazie mille ❤️", "sto arrivando 🚗", "bro sei un grande", "mi sono appena svegliato",
    "stasera pizza o sushi?", "Giorgio ha detto che viene anche Chiara", "perfetto, allora sabato",
    "raga giovedì calcetto confermato ⚽", "ho finito adesso di lavorare, che giornata",
]
ENGLISH = [
    "see you tonight", "running late, sorry!", "did you watch the game?", "lol that's hilarious 😂",
    "sounds good to me", "can't make it tomorrow, sorry", "where are we meeting?", "happy birthday!! 🎉",
    "on my way", "that was such a fun evening, thanks everyone",
]
PRIVATE = [
    "chiamami al {phone} quando arrivi", "scrivimi a {email} per i biglietti", "il link è {url}",
    "my number is {phone}, text me", "send it to {email} please", "info qui: {url}",
    "IBAN per la quota: IT60 X054 2811 1010 0000 0123 456",
]
PHONES = ["347 555 0123", "+39 02 555 0147", "333 555 0188", "+39 348 555 0102", "+1 212 555 0199"]
EMAILS = ["luca.ferri@example.com", "sara@example.org", "prenotazioni@example.net", "lea.martin@example.com"]
URLS = ["https://example.com/evento", "https://www.example.org/biglietti?id=42", "https://example.net/e/8841"]
MULTILINE = [
    "lista spesa per stasera:\nbirre\npatatine\nghiaccio",
    "formazione di giovedì:\nporta: Luca\ndifesa: Marco, Sara\nattacco: Giorgio, Léa",
    "raga ricapitolo\n1) ritrovo alle 20\n2) cena da Gino\n3) poi si vede 🍻",
    "shopping list:\nmilk\neggs\nbread",
]
MEDIA = [
    "<Media omessi>", "IMG-20220312-WA0007.jpg (file allegato)", "PTT-20220312-WA0011.opus (file allegato)",
    "STK-20220312-WA0003.webp (file allegato)", "posizione: https://maps.google.com/?q=45.4642,9.1900",
]
DELETED = "Questo messaggio è stato eliminato"
EDITED = " <Questo messaggio è stato modificato>"
SYSTEM = [
    "Luca Ferri ha aggiunto Léa Martin", "Sara Conti ha cambiato l'immagine del gruppo",
    "Chiamata vocale persa",
]
ENCRYPTION = (
    "I messaggi e le chiamate sono crittografati end-to-end. Nessuno al di fuori di questa chat, nemmeno "
    "WhatsApp, può leggerli o ascoltarli. Tocca per saperne di più."
)


# ---- the export --------------------------------------------------------------------------------------------
def message_text(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.06:
        return rng.choice(MEDIA)
    if roll < 0.07:
        return DELETED
    if roll < 0.10:
        return rng.choice(MULTILINE)
    if roll < 0.13:
        return rng.choice(PRIVATE).format(phone=rng.choice(PHONES), email=rng.choice(EMAILS), url=rng.choice(URLS))
    text = rng.choice(ENGLISH if roll < 0.25 else ITALIAN)
    return text + EDITED if rng.random() < 0.01 else text


def export_lines(count: int, seed: int = SEED) -> list[str]:
    """`count` messages (plus a few sender-less system lines) of an Android export, Italian locale, oldest first."""
    rng = random.Random(seed)
    names, weights = list(SENDERS), list(SENDERS.values())
    time_ = datetime(2022, 1, 10, 9, 30)
    lines = [f"{time_:%d/%m/%Y, %H:%M} - {ENCRYPTION}"]
    written = 0
    while written < count:
        time_ += timedelta(hours=rng.uniform(2, 30))  # a new session
        sender = rng.choices(names, weights)[0]
        for _ in range(min(rng.randint(4, 60), count - written)):
            if rng.random() < 0.45:  # a reply from someone else, a little later
                sender = rng.choices(names, weights)[0]
                time_ += timedelta(minutes=rng.randint(0, 6))
            lines.append(f"{time_:%d/%m/%Y, %H:%M} - {sender}: {message_text(rng)}")
            written += 1
        if rng.random() < 0.02:
            lines.append(f"{time_:%d/%m/%Y, %H:%M} - {rng.choice(SYSTEM)}")
    return lines


def write_export(folder: Path, count: int) -> Path:
    path = folder / f"WhatsApp Chat with {CHAT}.txt"
    path.write_text("\n".join(export_lines(count)) + "\n", encoding="utf-8")
    return path


# ---- measuring ---------------------------------------------------------------------------------------------
@dataclass
class Run:
    seconds: float  # wall clock
    cpu_seconds: float  # user + system time of the process
    peak_rss_mb: float


def measure(command: list[str]) -> Run:
    """Run `command` with stdout to /dev/null: wall clock, and that process's own CPU time and peak RSS (wait4)."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT)
    stderr = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    process.stderr.close()
    if process.returncode != 0:
        raise SystemExit(f"benchmark command failed ({process.returncode}): {' '.join(command)}\n{stderr.decode()}")
    return Run(seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024)  # ru_maxrss is in KiB on Linux


def best_of(runs: list[Run]) -> Run:
    """The fastest wall clock and the least CPU time of several runs of one command."""
    return Run(min(run.seconds for run in runs), min(run.cpu_seconds for run in runs),
               max(run.peak_rss_mb for run in runs))


def parse_command(export: Path) -> list[str]:
    return [sys.executable, "-m", "replica.cli", "parse", str(export)]


def prepare_command(export: Path, datasets_dir: Path) -> list[str]:
    return [
        sys.executable, "-m", "replica.cli", "prepare", f"data.exports=['{export}']", f"data.me=['{ME}']",
        f"data.datasets_dir={datasets_dir}",
    ]


WHATSTK = (
    "import sys\n"
    "from whatstk.whatsapp.parser import df_from_whatsapp\n"
    "df = df_from_whatsapp(sys.argv[1], auto_header=True, max_size=None)\n"
    "print(len(df))\n"
)


def whatstk_command(export: Path) -> list[str]:
    """whatstk's auto-detecting `df_from_whatsapp` (no `hformat`); max_size=None lifts its 50 MB input guard."""
    return [sys.executable, "-c", WHATSTK, str(export)]


def message_counts(export: Path) -> tuple[int, int, int]:
    """(whatstk rows, Replica messages, Replica messages that have a sender)."""
    whatstk = subprocess.run(whatstk_command(export), capture_output=True, text=True, check=True, cwd=ROOT)
    parsed = subprocess.run(parse_command(export), capture_output=True, text=True, check=True, cwd=ROOT)
    rows = [json.loads(line) for line in parsed.stdout.splitlines()]
    return int(whatstk.stdout.strip()), len(rows), sum(row["sender"] is not None for row in rows)


# ---- modes -------------------------------------------------------------------------------------------------
def speed(count: int, folder: Path, repeats: int = REPEATS) -> dict:
    export = write_export(folder, count)
    print(f"export: {export} ({export.stat().st_size / 1e6:.1f} MB, {count} messages)")
    whatstk_rows, replica_rows, replica_with_sender = message_counts(export)
    counts_match = whatstk_rows == replica_with_sender
    print(f"messages seen: whatstk {whatstk_rows}, replica {replica_rows} "
          f"({replica_with_sender} with a sender, {replica_rows - replica_with_sender} sender-less system lines, "
          f"which whatstk leaves out): {'same count' if counts_match else 'COUNTS DIFFER'}")
    whatstk = best_of([measure(whatstk_command(export)) for _ in range(repeats)])
    parse = best_of([measure(parse_command(export)) for _ in range(repeats)])
    # a fresh datasets_dir per repeat: a published dataset would be reused, not rebuilt
    prepare = best_of([measure(prepare_command(export, folder / f"datasets-{repeat}")) for repeat in range(repeats)])
    print(f"whatstk df_from_whatsapp (auto)    {whatstk.seconds:6.2f} s   (CPU {whatstk.cpu_seconds:6.2f} s)")
    print(f"replica parse                      {parse.seconds:6.2f} s   (CPU {parse.cpu_seconds:6.2f} s)   "
          f"{whatstk.seconds / parse.seconds:5.1f}x faster (CPU time: {whatstk.cpu_seconds / parse.cpu_seconds:5.1f}x)")
    print(f"replica prepare (whole pipeline)   {prepare.seconds:6.2f} s   "
          f"{prepare.seconds / whatstk.seconds:5.2f}x whatstk's parse time")
    parse_speedup = whatstk.seconds / parse.seconds
    prepare_ratio = prepare.seconds / whatstk.seconds
    return {
        "messages": count,
        "whatstk_messages": whatstk_rows,
        "replica_messages": replica_rows,
        "counts_match": counts_match,
        "whatstk_s": round(whatstk.seconds, 3),
        "replica_parse_s": round(parse.seconds, 3),
        "replica_prepare_s": round(prepare.seconds, 3),
        "whatstk_cpu_s": round(whatstk.cpu_seconds, 3),
        "replica_parse_cpu_s": round(parse.cpu_seconds, 3),
        "parse_speedup": round(parse_speedup, 2),
        "parse_speedup_cpu": round(whatstk.cpu_seconds / parse.cpu_seconds, 2),
        "prepare_vs_whatstk_parse": round(prepare_ratio, 3),
        "targets": {"parse_speedup>=6": parse_speedup >= 6, "prepare_vs_whatstk_parse<=3": prepare_ratio <= 3},
    }


def memory(count: int, folder: Path) -> dict:
    points = []
    for size in (count // 4, count):
        here = folder / str(size)
        here.mkdir(exist_ok=True)
        export = write_export(here, size)
        parse = measure(parse_command(export))
        prepare = measure(prepare_command(export, here / "datasets"))
        print(f"{size:>9} messages ({export.stat().st_size / 1e6:6.1f} MB): parse {parse.seconds:6.2f} s, "
              f"peak RSS {parse.peak_rss_mb:7.1f} MB; prepare {prepare.seconds:6.2f} s, "
              f"peak RSS {prepare.peak_rss_mb:7.1f} MB")
        points.append({"messages": size, "file_mb": round(export.stat().st_size / 1e6, 1),
                       "parse_s": round(parse.seconds, 2), "parse_peak_rss_mb": round(parse.peak_rss_mb, 1),
                       "prepare_s": round(prepare.seconds, 2), "prepare_peak_rss_mb": round(prepare.peak_rss_mb, 1)})
    small, large = points
    per_100k = 100_000 / (large["messages"] - small["messages"])
    growth = {step: large[f"{step}_peak_rss_mb"] - small[f"{step}_peak_rss_mb"] for step in ("parse", "prepare")}
    slopes = {f"{step}_mb_per_100k_messages": round(mb * per_100k, 1) for step, mb in growth.items()}
    print("memory growth per 100k messages: " + ", ".join(f"{key} {value}" for key, value in slopes.items()))
    return {"messages": count, "points": points, **slopes}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=70_000, help="messages in the generated export")
    parser.add_argument("--out", type=Path, help="folder for the export and dataset (default: a temp folder)")
    parser.add_argument("--memory", action="store_true", help="report peak RSS of parse/prepare at N/4 and N")
    parser.add_argument("--repeats", type=int, default=REPEATS, help="runs per timing; the best is kept")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="replica-bench-") as temp:
        folder = args.out or Path(temp)
        folder.mkdir(parents=True, exist_ok=True)
        result = memory(args.messages, folder) if args.memory else speed(args.messages, folder, args.repeats)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
