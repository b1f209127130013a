"""Fuzzing every export format through the real CLI: fixed seeds, hundreds of mutations (byte flips, truncation,
JSON type swaps, deep nesting, huge numbers, damaged zips). Each run must end with exit 0 (any stderr lines are
`replica: skipped ...` notes) or exit 2 with exactly one `replica: error: ...` line: never a traceback or a hang.

Most mutations run in this process through `replica.cli.main` (the console script's entry function); a sample runs
as real `python -m replica.cli` processes with a memory cap.
"""

from __future__ import annotations

import io
import json
import os
import random
import resource
import signal
import subprocess
import sys
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from replica.cli import main

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "examples" / "exports"
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "REPLICA_TZ": "UTC"}
CASE_SECONDS = 30  # a case still running after this is a hang (generous: 2 shared cores)
CHILD_MEMORY = 1536 * 1024 * 1024  # address-space cap of the subprocess runs

WHATSAPP_ANDROID = (
    "12/03/2021, 21:04 - I messaggi e le chiamate sono crittografati end-to-end.\n"
    "12/03/2021, 21:05 - Marco Bianchi: lista spesa:\nbirre\nghiaccio\n"
    "12/03/2021, 21:06 - Anna Verdi: ok 👍\n"
    "12/03/2021, 21:07 - Anna Verdi: <Media omessi>\n"
    "13/03/2021, 09:10 - Marco Bianchi: Questo messaggio è stato eliminato\n"
    "14/03/2021, 10:00 - Marco Bianchi: ci sei? https://example.com +39 333 123 4567\n"
    "14/03/2021, 10:02 - Anna Verdi: sì, arrivo\n"
)
WHATSAPP_IOS = (
    "\ufeff[3/12/21, 9:04:11\u202fPM] Anna Verdi: \u200eMessages and calls are end-to-end encrypted.\n"
    "[3/12/21, 9:05:00\u202fPM] Marco Bianchi: shopping list:\nbeer\nice\n"
    "[3/12/21, 9:06:30\u202fPM] Anna Verdi: \u200eimage omitted\n"
    "[3/12/21, 9:07:02\u202fPM] Anna Verdi: \u200e<attached: 00000012-PHOTO-2021-03-12-21-07-02.jpg>\n"
    "[3/13/21, 10:00:00\u202fAM] Marco Bianchi: see you at 8?\n"
    "[3/13/21, 10:01:00\u202fAM] Anna Verdi: yes!\n"
)
TELEGRAM_CHAT = {
    "name": "Bob Stone", "type": "personal_chat", "id": 7, "messages": [
        {"id": 1, "type": "service", "date": "2021-03-13T07:59:00", "date_unixtime": "1615622340", "actor": "Bob Stone",
         "actor_id": "user7", "action": "phone_call", "duration_seconds": 12, "text": "", "text_entities": []},
        {"id": 2, "type": "message", "date": "2021-03-13T08:00:00", "date_unixtime": "1615622400", "from": "Bob Stone",
         "from_id": "user7", "text": ["see ", {"type": "link", "text": "https://t.me/x"}, "!"],
         "text_entities": [{"type": "plain", "text": "see "}, {"type": "link", "text": "https://t.me/x"},
                           {"type": "plain", "text": "!"}]},
        {"id": 3, "type": "message", "date": "2021-03-13T08:01:30", "date_unixtime": "1615622490",
         "from": "Marco Bianchi", "from_id": "user1", "text": "hey Bob", "edited": "2021-03-13T08:02:00",
         "text_entities": [{"type": "plain", "text": "hey Bob"}]},
        {"id": 4, "type": "message", "date": "2021-03-13T08:03:00", "date_unixtime": "1615622580", "from": "Bob Stone",
         "from_id": "user7", "file": "voice_messages/a.ogg", "media_type": "voice_message", "duration_seconds": 3,
         "text": "", "text_entities": []},
        {"id": 5, "type": "message", "date": "2021-03-13T08:04:00", "date_unixtime": "1615622640",
         "from": "Marco Bianchi", "from_id": "user1", "photo": "photos/p.jpg", "width": 10, "height": 10,
         "text": "look", "text_entities": [{"type": "plain", "text": "look"}], "forwarded_from": "Someone"},
    ],
}
TELEGRAM_FULL = {
    "personal_information": {"user_id": 1, "first_name": "Marco", "last_name": "Bianchi", "username": "@marcob"},
    "chats": {"about": "", "list": [TELEGRAM_CHAT, {**TELEGRAM_CHAT, "name": None, "type": "saved_messages", "id": 1}]},
    "left_chats": {"about": "", "list": []},
}
MESSENGER = {
    "participants": [{"name": "Carla Neri"}, {"name": "Marco Bianchi"}],
    "messages": [  # newest first, as Messenger writes them
        {"sender_name": "Marco Bianchi", "timestamp_ms": 1615032000000, "content": "a dopo", "type": "Generic",
         "is_geoblocked_for_viewer": False},
        {"sender_name": "Carla Neri", "timestamp_ms": 1615031000000, "content": "Carla Neri sent a photo.",
         "photos": [{"uri": "photos/1.jpg", "creation_timestamp": 1615031000}], "type": "Generic"},
        {"sender_name": "Carla Neri", "timestamp_ms": 1615030000000, "content": "Reacted \u00e2\u009d\u00a4 to your message",
         "type": "Generic"},
        {"sender_name": "Carla Neri", "timestamp_ms": 1615028400000, "content": "ci vediamo? \u00c3\u00a8 tardi",
         "reactions": [{"reaction": "\u00e2\u009d\u00a4", "actor": "Marco Bianchi"}], "type": "Generic"},
        {"sender_name": "Marco Bianchi", "timestamp_ms": 1615028000000, "call_duration": 30, "type": "Call",
         "content": "Marco Bianchi called you."},
    ],
    "title": "Carla Neri", "is_still_participant": True, "thread_path": "inbox/carlaneri_1",
}
MESSENGER_E2EE = {
    "participants": ["Marco Bianchi", "Giulia Neri"], "threadName": "Giulia Neri",
    "messages": [
        {"isUnsent": False, "media": [], "reactions": [], "senderName": "Giulia Neri", "text": "Ci vediamo là?",
         "timestamp": 1_700_000_060_000, "type": "text"},
        {"isUnsent": False, "media": [{"uri": "./media/photo_1.jpg"}], "reactions": [], "senderName": "Marco Bianchi",
         "text": "", "timestamp": 1_700_000_030_000, "type": "media"},
    ],
}

# (file name, bytes) of every seed export written here; the bundled sample files join them.
SEEDS: list[tuple[str, bytes]] = [
    ("WhatsApp Chat with Anna Verdi.txt", WHATSAPP_ANDROID.encode()),
    ("_chat.txt", WHATSAPP_IOS.encode()),
    ("WhatsApp Chat with Anna.txt", WHATSAPP_ANDROID.replace("\n", "\r\n").encode("utf-16")),
    ("result.json", json.dumps(TELEGRAM_CHAT, ensure_ascii=False, indent=1).encode()),
    ("result.json", json.dumps(TELEGRAM_FULL, ensure_ascii=False).encode()),
    ("message_1.json", json.dumps(MESSENGER, indent=2).encode()),
    ("message_1.json", json.dumps(MESSENGER_E2EE, ensure_ascii=False).encode()),
]
SAMPLE_SEEDS = sorted(path for path in SAMPLE.rglob("*") if path.is_file() and path.suffix in (".txt", ".json"))
ME = "data.me=['Marco Bianchi','Marco']"


class Hang(Exception):
    pass


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Fail a case that runs longer than `seconds` (SIGALRM interrupts even a stuck read or regex)."""
    def expire(signum, frame):
        raise Hang(f"still running after {seconds}s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# ---- mutations ---------------------------------------------------------------------------------------------
SPECIAL_BYTES = [b"\x00", b"\xff", b"\xef\xbb\xbf", b"\r", b"\n", b"\xe2\x80\x8e", b"\xe2\x80\xaf", b"\xc3", b"{",
                 b"[", b"\"", b"\\", b"\\ud800", b"<", b":", b" - ", b"/", b",", b"\x1b"]
HUGE_TOKENS = ["9" * 5000, "1e400", "-1e400", "NaN", "Infinity", "-Infinity", "1" + "0" * 40, "-0", "1e-400"]


def flip_bytes(rng: random.Random, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        if out:
            out[rng.randrange(len(out))] ^= 1 << rng.randrange(8)
    return bytes(out)


def truncate(rng: random.Random, data: bytes) -> bytes:
    return data[: rng.randrange(len(data) + 1)]


def splice(rng: random.Random, data: bytes) -> bytes:
    """Insert special bytes, delete a range, or duplicate a chunk."""
    at = rng.randrange(len(data) + 1)
    choice = rng.randrange(3)
    if choice == 0:
        return data[:at] + rng.choice(SPECIAL_BYTES) * rng.randint(1, 3) + data[at:]
    end = min(len(data), at + rng.randint(1, 64))
    if choice == 1:
        return data[:at] + data[end:]
    return data[:end] + data[at:end] * rng.randint(2, 50) + data[end:]


def shuffle_lines(rng: random.Random, data: bytes) -> bytes:
    lines = data.split(b"\n")
    rng.shuffle(lines)
    return b"\n".join(lines[: rng.randint(1, len(lines))])


def random_value(rng: random.Random, depth: int = 0) -> Any:
    """Any JSON value, including the awkward ones (huge, non-finite, deep, empty, wrong-typed)."""
    pick = rng.randrange(14)
    if pick == 0:
        return None
    if pick == 1:
        return rng.choice([True, False])
    if pick == 2:
        return rng.choice([0, -1, 7, 2**31, 2**63, 10**30, -(10**20)])
    if pick == 3:
        return rng.choice([1.5, -0.0, 1e300, -1e300, float("inf"), float("-inf"), float("nan")])
    if pick == 4:
        return rng.choice(["", " ", "x" * 1000, "2021-13-45T99:99:99", "1615622400", "\ud800", "null", "\u200e", "🙂"])
    if pick == 5:
        return [] if depth > 2 else [random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    if pick == 6:
        return {} if depth > 2 else {rng.choice(["text", "type", "name", "uri", "x"]): random_value(rng, depth + 1)}
    if pick == 7:
        nested: Any = "deep"
        for _ in range(rng.choice([50, 300, 700])):
            nested = [nested]
        return nested
    return rng.choice(["Marco Bianchi", "text", "message", "service", "sticker", "Generic", "Call", 12, ["a", "b"]])


def json_paths(root: Any) -> list[tuple]:
    """The path (keys/indexes) of every node, root first; iterative, as values may be nested hundreds deep."""
    paths, stack = [], [((), root)]
    while stack:
        path, node = stack.pop()
        paths.append(path)
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        stack.extend(((*path, key), value) for key, value in items)
    return paths


def _set(root: Any, path: tuple, value: Any, delete: bool = False) -> Any:
    if not path:
        return value
    parent = root
    for step in path[:-1]:
        parent = parent[step]
    if delete and isinstance(parent, dict):
        del parent[path[-1]]
    elif delete:
        parent.pop(path[-1])
    else:
        parent[path[-1]] = value
    return root


def json_type_swap(rng: random.Random, data: bytes) -> bytes:
    """Replace, delete or rename a few fields of a JSON export, then write it back (non-finite numbers included)."""
    try:
        root = json.loads(data)
    except (ValueError, RecursionError):
        return flip_bytes(rng, data)
    for _ in range(rng.randint(1, 4)):
        paths = list(json_paths(root))
        path = rng.choice(paths[1:] or paths)
        action = rng.randrange(4)
        if action == 0 and path:
            root = _set(root, path, None, delete=True)
        elif action == 1 and path and isinstance(path[-1], str):
            parent = root
            for step in path[:-1]:
                parent = parent[step]
            parent[rng.choice(["Text", "from_", "date ", "timestamp", "sender"])] = parent.pop(path[-1])
        else:
            root = _set(root, path, random_value(rng))
    try:
        return json.dumps(root, ensure_ascii=rng.random() < 0.5).encode("utf-8", "surrogatepass")
    except RecursionError:  # two deep values nested in each other: too deep for json.dumps itself
        return flip_bytes(rng, data)


def json_token(rng: random.Random, data: bytes) -> bytes:
    """Put a raw awkward token (5000-digit integer, 1e400, NaN, deep brackets) where a number or string sits."""
    text = data.decode("utf-8", "replace")
    spots = [index for index, char in enumerate(text) if char in ":,["]
    if not spots:
        return data
    at = rng.choice(spots) + 1
    token = rng.choice(HUGE_TOKENS + ["[" * 100_000 + "]" * 100_000, "{\"a\":" * 2000 + "1" + "}" * 2000])
    end = at
    while end < len(text) and text[end] not in ",}]":
        end += 1
    return (text[:at] + token + text[end:]).encode("utf-8", "surrogatepass")


BYTE_MUTATORS: list[Callable[[random.Random, bytes], bytes]] = [flip_bytes, truncate, splice, shuffle_lines]
JSON_MUTATORS: list[Callable[[random.Random, bytes], bytes]] = [json_type_swap, json_type_swap, json_token]


def mutate(rng: random.Random, name: str, data: bytes) -> bytes:
    mutators = BYTE_MUTATORS + (JSON_MUTATORS if name.endswith(".json") else [])
    for _ in range(rng.choice([1, 1, 2, 3])):
        data = rng.choice(mutators)(rng, data)
    return data


def zip_of(members: list[tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members:
            zf.writestr(name, data)
    return buffer.getvalue()


def shrunk(path: Path) -> bytes:
    """A bundled sample export cut to its first messages (whole lines, valid JSON), so that each case stays fast."""
    data = path.read_bytes()
    if path.suffix != ".json":
        return data[: data.find(b"\n", 4096) + 1 or None]
    root = json.loads(data)
    stack = [root]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if isinstance(node.get("messages"), list):
                node["messages"] = node["messages"][:25]
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return json.dumps(root, ensure_ascii=False).encode()


def all_seeds() -> list[tuple[str, bytes]]:
    return SEEDS + [(path.name, shrunk(path)) for path in SAMPLE_SEEDS]


# ---- the contract ------------------------------------------------------------------------------------------
def check_outcome(code: int, err: str, case: str) -> None:
    lines = err.splitlines()
    assert "Traceback" not in err, f"{case}: {err[-3000:]}"
    if code == 2:
        assert len(lines) == 1 and lines[0].startswith("replica: error: "), f"{case}: {err[-3000:]}"
    else:
        assert code == 0, f"{case}: exit {code}: {err[-3000:]}"
        assert all(line.startswith("replica: skipped ") for line in lines), f"{case}: {err[-3000:]}"


def run_in_process(capsys, args: list[str], case: str) -> int:
    with deadline(CASE_SECONDS):
        try:
            code = main(args)
        except Hang:
            pytest.fail(f"{case}: hang")
    captured = capsys.readouterr()
    check_outcome(code, captured.err, case)
    return code


@pytest.fixture(autouse=True)
def utc(monkeypatch):
    monkeypatch.setenv("REPLICA_TZ", "UTC")


# ---- the fuzz runs -----------------------------------------------------------------------------------------
def test_mutated_files_parse_or_fail_in_one_line(tmp_path, capsys):
    """Every seed mutated many times, each through `replica parse` (and every fourth through `replica senders`)."""
    rng = random.Random(20261123)
    outcomes = {0: 0, 2: 0}
    cases = 0
    for round_ in range(50):
        for seed_index, (name, data) in enumerate(all_seeds()):
            mutated = mutate(rng, name, data)
            path = tmp_path / f"{round_}_{seed_index}" / name
            path.parent.mkdir()
            path.write_bytes(mutated)
            command = "senders" if cases % 4 == 3 else "parse"
            outcomes[run_in_process(capsys, [command, str(path)], f"{command} {name} round {round_}")] += 1
            cases += 1
    assert cases >= 450
    assert outcomes[0] > cases // 10 and outcomes[2] > cases // 10  # the mutations hit both outcomes


def test_mutated_zips_and_zipped_mutations(tmp_path, capsys):
    """Zips of mutated exports, and whole zips with flipped or truncated bytes (members, headers, directory)."""
    rng = random.Random(7)
    seeds = all_seeds()
    cases = 0
    for round_ in range(80):
        members = rng.sample(seeds, rng.randint(1, 3))
        members = [(f"{index}/{name}", mutate(rng, name, data) if rng.random() < 0.5 else data)
                   for index, (name, data) in enumerate(members)]
        archive = zip_of(members)
        if rng.random() < 0.7:
            archive = rng.choice([flip_bytes, truncate, splice])(rng, archive)
        path = tmp_path / f"export_{round_}.zip"
        path.write_bytes(archive)
        run_in_process(capsys, ["parse", str(path)], f"zip round {round_}")
        cases += 1
    assert cases == 80


def test_mutated_folders_through_prepare(tmp_path, capsys):
    """A folder of mutated exports through `replica prepare` (Hydra config, cleaning, masking, splits)."""
    rng = random.Random(11)
    seeds = SEEDS
    for round_ in range(8):
        folder = tmp_path / f"exports_{round_}"
        folder.mkdir()
        for index, (name, data) in enumerate(seeds):
            (folder / f"{index}_{name}").write_bytes(mutate(rng, name, data) if rng.random() < 0.6 else data)
        args = ["prepare", f"data.exports=[{folder}]", ME, f"data.datasets_dir={tmp_path / f'dataset_{round_}'}"]
        run_in_process(capsys, args, f"prepare round {round_}")


def test_mutations_as_real_processes_with_a_memory_cap(tmp_path):
    """A sample of mutations through `python -m replica.cli parse` in a fresh process capped at 1.5 GiB."""
    rng = random.Random(3)
    seeds = all_seeds()

    def cap_memory() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (CHILD_MEMORY, CHILD_MEMORY))

    for round_ in range(12):
        name, data = rng.choice(seeds)
        path = tmp_path / f"{round_}" / name
        path.parent.mkdir()
        path.write_bytes(mutate(rng, name, data))
        target = path
        if round_ % 3 == 0:
            target = path.with_suffix(".zip")
            target.write_bytes(rng.choice([flip_bytes, truncate])(rng, zip_of([(name, path.read_bytes())])))
        result = subprocess.run([sys.executable, "-m", "replica.cli", "parse", str(target)], cwd=tmp_path, env=ENV,
                                capture_output=True, text=True, timeout=60, preexec_fn=cap_memory)
        check_outcome(result.returncode, result.stderr, f"process round {round_} ({name})")
