"""The committed demo exports: reproducible by the generator and shaped like the real platforms' exports."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GENERATOR = ROOT / "examples" / "generate_samples.py"
EXPORTS = ROOT / "examples" / "exports"
ANDROID = EXPORTS / "whatsapp" / "WhatsApp Chat with Luca Ferri.txt"
IOS = EXPORTS / "whatsapp" / "WhatsApp Chat with Calcetto del giovedì.txt"
TELEGRAM = EXPORTS / "telegram" / "result.json"
MESSENGER = EXPORTS / "messenger" / "inbox" / "giulia_abc123"
ME = "Marco Bianchi"

ANDROID_LINE = re.compile(r"^(\d\d/\d\d/\d{4}, \d\d:\d\d) - (?:([^:]+): )?(.*)$")
IOS_LINE = re.compile(r"^\u200e?\[(\d\d/\d\d/\d\d, \d\d:\d\d:\d\d)\] ([^:]+): (.*)$")


def files_under(root: Path) -> dict[str, bytes]:
    return {path.relative_to(root).as_posix(): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


def whatsapp_messages(path: Path, pattern: re.Pattern) -> list[tuple[str | None, str]]:
    """(sender, text) per message; lines that don't start a message continue the previous one."""
    messages: list[tuple[str | None, str]] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        match = pattern.match(line)
        if match:
            messages.append((match.group(2), match.group(3)))
        else:
            sender, text = messages[-1]
            messages[-1] = (sender, f"{text}\n{line}")
    return messages


def messenger_messages() -> list[dict]:
    rows = []
    for path in sorted(MESSENGER.glob("message_*.json")):
        rows += json.loads(path.read_text(encoding="ascii"))["messages"]
    return rows


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("exports")
    subprocess.run([sys.executable, str(GENERATOR), "--out", str(out)], check=True, capture_output=True)
    return out


def test_generator_reproduces_committed_files_byte_for_byte(regenerated):
    committed, fresh = files_under(EXPORTS), files_under(regenerated)
    assert sorted(fresh) == sorted(committed)
    for name in committed:
        assert fresh[name] == committed[name], f"{name} differs from a fresh run of the generator"


def test_android_chat_shape():
    lines = ANDROID.read_text(encoding="utf-8").splitlines()
    assert ANDROID_LINE.match(lines[0]).group(2) is None  # the encryption notice has no sender
    messages = whatsapp_messages(ANDROID, ANDROID_LINE)
    senders = Counter(sender for sender, _ in messages)
    assert set(senders) == {None, ME, "Luca Ferri"}
    assert len(messages) > 1500 and len(lines) > len(messages)  # some messages span several lines
    texts = [text for _, text in messages]
    assert "<Media omessi>" in texts
    assert "Hai eliminato questo messaggio" in texts and "Questo messaggio è stato eliminato" in texts
    assert any(text.endswith("<Questo messaggio è stato modificato>") for text in texts)


def test_ios_group_shape():
    messages = whatsapp_messages(IOS, IOS_LINE)
    senders = Counter(sender for sender, _ in messages)
    assert {ME, "Luca Ferri", "Sara Conti", "~ Giorgio", "+39 347 555 0199", "Calcetto del giovedì"} == set(senders)
    assert 1 <= senders["+39 347 555 0199"] <= 2
    texts = [text for _, text in messages]
    assert any(text == "\u200eimmagine omessa" for text in texts)
    assert any(re.fullmatch(r"\u200e<allegato: \d{8}-PHOTO-[\d-]+\.jpg>", text) for text in texts)
    assert "\u200eHai creato il gruppo “Calcetto del giovedì”" in texts
    assert sum(len(text.splitlines()) > 1 for text in texts) > 5
    for line in IOS.read_text(encoding="utf-8").splitlines()[1:]:
        if "omess" in line or "<allegato:" in line or line.startswith("\u200e[") and " Calcetto del giovedì: " in line:
            assert line.startswith("\u200e["), line


def test_telegram_shape():
    export = json.loads(TELEGRAM.read_text(encoding="utf-8"))
    assert export["type"] == "personal_chat" and export["name"] == "Elena Russo" and isinstance(export["id"], int)
    rows = export["messages"]
    assert 550 <= len(rows) <= 700
    assert [row["id"] for row in rows] == list(range(1, len(rows) + 1))
    assert [row["date"] for row in rows] == sorted(row["date"] for row in rows)
    for row in rows:
        assert {"id", "type", "date", "date_unixtime", "text", "text_entities"} <= set(row)
        assert row["type"] in ("message", "service")
        if row["type"] == "message":
            assert row["from"] in (ME, "Elena Russo") and row["from_id"].startswith("user")
        pieces = row["text"] if isinstance(row["text"], list) else [row["text"]]
        flat = "".join(piece if isinstance(piece, str) else piece["text"] for piece in pieces)
        assert flat == "".join(entity["text"] for entity in row["text_entities"])
    entity_types = {piece["type"] for row in rows if isinstance(row["text"], list) for piece in row["text"]
                    if isinstance(piece, dict)}
    assert {"link", "phone", "email"} <= entity_types
    assert any("photo" in row for row in rows) and any(row.get("media_type") == "sticker" for row in rows)
    assert sum("forwarded_from" in row for row in rows) == 1
    assert any("edited" in row for row in rows)
    assert any(row["type"] == "service" for row in rows)


def test_messenger_shape_and_mojibake():
    first = json.loads((MESSENGER / "message_1.json").read_text(encoding="ascii"))
    assert first["participants"] == [{"name": "Giulia Neri"}, {"name": ME}]
    rows = messenger_messages()
    assert 350 <= len(rows) <= 450
    stamps = [row["timestamp_ms"] for row in rows]
    assert stamps == sorted(stamps, reverse=True)  # newest first, message_1 before message_2
    contents = [row["content"] for row in rows if "content" in row]
    assert any("Ã" in content for content in contents)  # UTF-8 read as latin-1, as Facebook writes it
    assert "vabbè" in " ".join(content.encode("latin-1").decode("utf-8") for content in contents)
    assert "Marco sent an attachment." in contents
    assert any(row.get("is_unsent") for row in rows) and any("photos" in row for row in rows)
    assert any("reactions" in row for row in rows)


def test_marco_writes_enough_and_in_a_recognizable_style():
    whatsapp = whatsapp_messages(ANDROID, ANDROID_LINE) + whatsapp_messages(IOS, IOS_LINE)
    telegram = [(row.get("from"), row["text"]) for row in json.loads(TELEGRAM.read_text(encoding="utf-8"))["messages"]
                if isinstance(row["text"], str)]
    messenger = [(row["sender_name"], row["content"].encode("latin-1").decode("utf-8"))
                 for row in messenger_messages() if "content" in row]
    texts = [(sender, text) for sender, text in whatsapp + telegram + messenger
             if text and not text.startswith("\u200e") and text != "<Media omessi>" and "sent an attachment" not in text]
    marco = [text for sender, text in texts if sender == ME]
    others = [text for sender, text in texts if sender not in (ME, None, "Calcetto del giovedì")]
    assert len(marco) >= 1800

    def share(messages: list[str], test) -> float:
        return sum(map(test, messages)) / len(messages)

    assert share(marco, lambda t: t == t.lower()) > 0.95 > share(others, lambda t: t == t.lower())
    assert share(marco, lambda t: t.endswith(".")) < 0.01 < 0.3 < share(others, lambda t: t.endswith("."))
    assert share(marco, lambda t: "ahah" in t) > 0.08 > 0.01 > share(others, lambda t: "ahah" in t)
    assert share(marco, lambda t: "😂" in t or "🔥" in t) > 0.1 > 0.01 > share(others, lambda t: "😂" in t)
    assert share(marco, len) * 1.5 < share(others, len)
