"""`replica parse`, `replica senders` and `replica prepare` run as real processes (`python -m replica.cli`)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest


ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "examples" / "exports"
ISO_SECONDS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$")
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}  # the checkout, installed or not
FIELDS = {"time", "sender", "text", "kind", "platform", "chat", "edited", "forwarded"}

WHATSAPP = (
    "12/03/2021, 21:04 - I messaggi e le chiamate sono crittografati end-to-end.\n"
    "12/03/2021, 21:05 - Marco Bianchi: lista spesa:\nbirre\nghiaccio\n"
    "12/03/2021, 21:06 - Anna Verdi: ok 👍\n"
    "12/03/2021, 21:07 - Anna Verdi: <Media omessi>\n"
    "14/03/2021, 10:00 - Marco Bianchi: ci sei?\n"
)
TELEGRAM = {
    "name": "Bob Stone", "type": "personal_chat", "id": 7, "messages": [
        {"id": 1, "type": "message", "date": "2021-03-13T08:00:00", "from": "Bob Stone", "from_id": "user7",
         "text": "morning!"},
        {"id": 2, "type": "message", "date": "2021-03-13T08:01:30", "from": "Marco Bianchi", "from_id": "user1",
         "text": "hey Bob"},
    ],
}
MESSENGER = {
    "participants": [{"name": "Carla Neri"}, {"name": "Marco Bianchi"}],
    "messages": [  # Messenger lists newest first
        {"sender_name": "Marco Bianchi", "timestamp_ms": 1615032000000, "content": "a dopo", "type": "Generic"},
        {"sender_name": "Carla Neri", "timestamp_ms": 1615028400000, "content": "ci vediamo?", "type": "Generic"},
    ],
    "title": "Carla Neri", "thread_path": "inbox/carlaneri_1",
}


def replica(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run the real CLI in a fresh interpreter."""
    return subprocess.run(
        [sys.executable, "-m", "replica.cli", *args], cwd=cwd, env={**ENV, **(env or {})}, capture_output=True,
        text=True, encoding="utf-8", timeout=120,
    )


def assert_one_line_error(result: subprocess.CompletedProcess, *named: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("replica: error: "), result.stderr
    for name in named:
        assert name in lines[0]


@pytest.fixture
def exports(tmp_path: Path) -> Path:
    """A folder holding one export of each platform and one file that is no export."""
    folder = tmp_path / "exports"
    (folder / "telegram").mkdir(parents=True)
    (folder / "messenger" / "inbox" / "carlaneri_1").mkdir(parents=True)
    (folder / "WhatsApp Chat with Anna Verdi.txt").write_text(WHATSAPP, encoding="utf-8")
    (folder / "telegram" / "result.json").write_text(json.dumps(TELEGRAM), encoding="utf-8")
    (folder / "messenger" / "inbox" / "carlaneri_1" / "message_1.json").write_text(json.dumps(MESSENGER))
    (folder / "notes.txt").write_text("shopping: milk, eggs\n", encoding="utf-8")
    return folder


# ---- parse -------------------------------------------------------------------------------------------------
def test_parse_prints_one_json_object_per_message_oldest_first_across_platforms(exports, tmp_path):
    result = replica("parse", str(exports), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == 9
    assert all(FIELDS <= row.keys() and ISO_SECONDS.match(row["time"]) for row in rows)
    assert [row["time"] for row in rows] == sorted(row["time"] for row in rows)
    assert {row["platform"] for row in rows} == {"whatsapp", "telegram", "messenger"}
    shopping = next(row for row in rows if row["text"].startswith("lista spesa"))
    assert shopping == {
        "time": "2021-03-12T21:05:00", "sender": "Marco Bianchi", "text": "lista spesa:\nbirre\nghiaccio",
        "kind": "text", "platform": "whatsapp", "chat": "Anna Verdi", "edited": False, "forwarded": False,
    }
    assert next(row for row in rows if row["kind"] == "media")["media"] == "other"
    assert "👍" in result.stdout  # UTF-8 as is, not \\u escapes
    skipped = result.stderr.splitlines()
    assert len(skipped) == 1 and skipped[0].startswith(f"replica: skipped {exports / 'notes.txt'}: ")


# Header lines of the bundled WhatsApp files (Android, then iOS with its U+200E lead): one message each.
SAMPLE_HEADERS = {
    "Luca Ferri": re.compile(r"^\d{2}/\d{2}/\d{4}, \d{2}:\d{2} - ", re.MULTILINE),
    "Calcetto del giovedì": re.compile(r"^\u200e?\[\d{2}/\d{2}/\d{2}, \d{2}:\d{2}:\d{2}\] ", re.MULTILINE),
}
# Rows read off the sample files by hand, one per format and kind.
SAMPLE_ROWS = [
    {"time": "2021-03-13T08:42:00", "sender": "Marco Bianchi",
     "text": "ma lista spesa per stasera:\nbirre\npatatine\nghiaccio", "kind": "text", "platform": "whatsapp",
     "chat": "Luca Ferri", "edited": False, "forwarded": False},
    {"time": "2021-03-20T18:31:05", "sender": None, "text": "Hai creato il gruppo “Calcetto del giovedì”",
     "kind": "system", "platform": "whatsapp", "chat": "Calcetto del giovedì", "edited": False, "forwarded": False},
    {"time": "2021-03-20T20:11:02", "sender": "Sara Conti", "text": "I can do the second half.", "kind": "text",
     "platform": "whatsapp", "chat": "Calcetto del giovedì", "edited": True, "forwarded": False},
    {"time": "2021-04-06T21:23:10", "sender": "Giorgio", "text": "", "kind": "media", "platform": "whatsapp",
     "chat": "Calcetto del giovedì", "edited": False, "forwarded": False, "media": "image"},
    {"time": "2021-04-16T22:16:32", "sender": "Luca Ferri", "text": "", "kind": "deleted", "platform": "whatsapp",
     "chat": "Calcetto del giovedì", "edited": False, "forwarded": False},
    {"time": "2021-04-17T00:18:50", "sender": "Elena Russo",
     "text": "Sure, here it is: https://www.example.com/prenota", "kind": "text", "platform": "telegram",
     "chat": "Elena Russo", "edited": False, "forwarded": False},
    {"time": "2021-07-02T17:05:31", "sender": "Marco Bianchi", "text": "citofono bianchi", "kind": "text",
     "platform": "messenger", "chat": "Giulia Neri", "edited": False, "forwarded": False},  # 1625245531271 ms, UTC
]


def test_parse_of_the_bundled_sample_is_every_message_oldest_first(tmp_path):
    result = replica("parse", str(SAMPLE), cwd=tmp_path, env={"REPLICA_TZ": "UTC"})
    assert result.returncode == 0 and result.stderr == ""
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    expected = {("whatsapp", chat): len(header.findall((SAMPLE / "whatsapp" / f"WhatsApp Chat with {chat}.txt")
                                                       .read_text(encoding="utf-8")))
                for chat, header in SAMPLE_HEADERS.items()}
    telegram = json.loads((SAMPLE / "telegram" / "result.json").read_text(encoding="utf-8"))
    expected["telegram", telegram["name"]] = len(telegram["messages"])
    messenger = [json.loads(path.read_text(encoding="utf-8"))
                 for path in SAMPLE.glob("messenger/inbox/*/message_*.json")]
    expected["messenger", messenger[0]["title"]] = sum(len(part["messages"]) for part in messenger)
    assert Counter((row["platform"], row["chat"]) for row in rows) == expected
    assert [row["time"] for row in rows] == sorted(row["time"] for row in rows)
    for row in SAMPLE_ROWS:
        assert row in rows


def test_parse_does_not_import_torch_or_hydra(exports, tmp_path):
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "replica.cli", "parse", str(exports / "telegram")],
        cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")}
    assert "replica.commands.ingest" in imported
    assert not {name.split(".")[0] for name in imported} & {"torch", "hydra", "omegaconf", "transformers", "numpy"}


def test_parse_into_a_closed_pipe_exits_quietly(tmp_path):
    process = subprocess.Popen(
        [sys.executable, "-m", "replica.cli", "parse", str(SAMPLE)], cwd=tmp_path,
        env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    first = process.stdout.readline()
    process.stdout.close()  # like `| head -1`
    stderr = process.stderr.read().decode()
    process.wait(timeout=60)
    assert json.loads(first)["time"]
    assert stderr == ""
    assert process.returncode == 141


# ---- senders -----------------------------------------------------------------------------------------------
def test_senders_counts_messages_per_sender(exports, tmp_path):
    result = replica("senders", str(exports), "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert rows == [
        {"sender": "Marco Bianchi", "messages": 4, "text": 4, "media": 0, "first": "2021-03-06", "last": "2021-03-14"},
        {"sender": "Anna Verdi", "messages": 2, "text": 1, "media": 1, "first": "2021-03-12", "last": "2021-03-12"},
        {"sender": "Bob Stone", "messages": 1, "text": 1, "media": 0, "first": "2021-03-13", "last": "2021-03-13"},
        {"sender": "Carla Neri", "messages": 1, "text": 1, "media": 0, "first": "2021-03-06", "last": "2021-03-06"},
    ]


def test_senders_table_is_aligned_and_sorted_by_count(tmp_path):
    result = replica("senders", str(SAMPLE), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    header, *rows = result.stdout.splitlines()
    assert header.split() == ["messages", "text", "media", "first", "last", "sender"]
    parsed = [json.loads(line) for line in replica("parse", str(SAMPLE), cwd=tmp_path).stdout.splitlines()]
    marco = sum(message["sender"] == "Marco Bianchi" for message in parsed)
    assert rows[0].split()[-2:] == ["Marco", "Bianchi"] and rows[0].split()[0] == str(marco)
    counts = [int(row.split()[0]) for row in rows]
    assert counts == sorted(counts, reverse=True)
    assert len({re.search(r"\d{4}-\d\d-\d\d", row).start() for row in rows}) == 1  # dates line up


# ---- bad input ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("missing.txt", None),
        ("empty.txt", b""),
        ("photo.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4),
        ("result.json", json.dumps(TELEGRAM).encode()[:-40]),
    ],
)
@pytest.mark.parametrize("command", ["parse", "senders"])
def test_bad_export_fails_with_one_line_naming_the_file(tmp_path, command, name, content):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    result = replica(command, str(path), cwd=tmp_path)
    assert_one_line_error(result, str(path))
    assert result.stdout == ""


# ---- prepare -----------------------------------------------------------------------------------------------
def test_prepare_writes_one_content_addressed_dataset_and_reuses_it(tmp_path):
    store = tmp_path / "datasets"
    result = replica("prepare", f"data.datasets_dir={store}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    (dataset,) = store.iterdir()
    assert re.fullmatch(r"[0-9a-f]{64}", dataset.name)
    assert sorted(path.name for path in dataset.iterdir()) == [
        "manifest.json", "stats.json", "test.jsonl", "train.jsonl", "val.jsonl"]
    stats = json.loads((dataset / "stats.json").read_text())
    parsed = replica("parse", str(SAMPLE), cwd=tmp_path).stdout.splitlines()
    assert stats["messages"]["loaded"] == len(parsed)
    train = [json.loads(line) for line in (dataset / "train.jsonl").read_text().splitlines()]
    assert len(train) == stats["examples"]["train"] > 0
    manifest = json.loads((dataset / "manifest.json").read_text())
    assert manifest["key"] == dataset.name
    assert manifest["files"] == {name: hashlib.sha256((dataset / name).read_bytes()).hexdigest()
                                 for name in ("train.jsonl", "val.jsonl", "test.jsonl")}
    assert f"examples      train {stats['examples']['train']} / val" in result.stdout
    assert result.stdout.rstrip().endswith(str(dataset))
    written = {path.name: path.stat().st_mtime_ns for path in dataset.iterdir()}

    again = replica("prepare", f"data.datasets_dir={store}", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "up to date" in again.stdout and again.stdout.rstrip().endswith(str(dataset))
    assert list(store.iterdir()) == [dataset]
    assert {path.name: path.stat().st_mtime_ns for path in dataset.iterdir()} == written


def test_prepare_expands_home_in_export_paths(exports, tmp_path):
    home = tmp_path / "home"
    (home / "chats").mkdir(parents=True)
    (home / "chats" / "WhatsApp Chat with Luca Ferri.txt").write_bytes(
        (SAMPLE / "whatsapp" / "WhatsApp Chat with Luca Ferri.txt").read_bytes()
    )
    result = replica("prepare", "data.exports=[~/chats]", "data.datasets_dir=~/datasets", "data.me=['Marco Bianchi']",
                     cwd=tmp_path, env={"HOME": str(home)})
    assert result.returncode == 0, result.stderr
    (dataset,) = (home / "datasets").iterdir()
    assert (dataset / "train.jsonl").stat().st_size > 0


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        (["data.foo=1"], "data.foo"),
        (["data.me=['Nobody Here']"], "data.me"),
        (["data.exports=[/no/such/export]"], "/no/such/export"),
        (["data.split=[0.5,0.5,0.5]"], "data.split"),
        (["data.dataset_dir=/tmp/old-style"], "data.dataset_dir"),
    ],
)
def test_failed_prepare_reports_one_line_and_leaves_the_store_alone(tmp_path, overrides, named):
    store = tmp_path / "datasets"
    old_dataset = store / ("0" * 64)
    old_dataset.mkdir(parents=True)
    old = '{"context": [], "target": "old"}\n'.encode()
    (old_dataset / "train.jsonl").write_bytes(old)
    result = replica("prepare", f"data.datasets_dir={store}", *overrides, cwd=tmp_path)
    assert_one_line_error(result, named)
    assert (old_dataset / "train.jsonl").read_bytes() == old
    assert list(store.iterdir()) == [old_dataset]
