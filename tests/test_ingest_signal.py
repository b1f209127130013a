"""Signal text exports (signal-export's `<chat>/chat.md`): detection, bodies, owner, and never WhatsApp."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

from replica.ingest import load_exports

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}

# Current signal-export layout: seconds, every body ends with two spaces, quotes/reactions/attachments inline.
CURRENT = (
    "[2023-02-11 09:12:40] Tomás Ruiz: are we still on for saturday?  \n"
    "[2023-02-11 09:13:02] Me: yes!\nbring the maps  \n"
    "(- Tomás Ruiz: 👍 -)\n"
    "[2023-02-11 09:15:11] Tomás Ruiz: \n\n> yes!\n> bring the maps\n\ngot them  \n"
    "[2023-02-11 09:16:00] Me: the trail ![IMG_2231.jpg](./media/2023-02-11T09-16-00.000_00_IMG_2231.jpg)  \n"
    "[2023-02-11 09:16:30] Me: [route.gpx](./media/2023-02-11T09-16-30.000_00_route.gpx)  \n"
    "[2023-02-11 09:17:00] Tomás Ruiz:   \n(( 😂 ))\n"
    "[2023-02-11 09:18:00] Tomás Ruiz: (This message was deleted)\n"
    "[2023-02-11 20:01:05] Me: Outgoing voice call (accepted, 3m 12s)  \n"
    "[2023-02-12 08:00:00] Tomás Ruiz: [2023-02-11, 20:01] is when we talked  \n"
)
# Older signal-export layout: comma between date and time, minutes only.
OLDER = "[2019-05-29, 15:04] Me: How is everyone?\n[2019-05-29, 15:10] Aya: We're great!\nand you?\n"


def parse_cli(*paths: Path) -> list[dict]:
    result = subprocess.run(
        [sys.executable, "-m", "replica.cli", "parse", *map(str, paths)],
        capture_output=True, text=True, env=ENV, timeout=120, check=True,
    )
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_current_layout_in_its_chat_folder(tmp_path):
    chat = tmp_path / "signal-chats" / "Tomás Ruiz"
    chat.mkdir(parents=True)
    (chat / "chat.md").write_text(CURRENT, encoding="utf-8")
    (chat / "media").mkdir()
    rows = parse_cli(tmp_path / "signal-chats")
    assert {row["platform"] for row in rows} == {"signal"}
    assert {row["chat"] for row in rows} == {"Tomás Ruiz"}
    got = [(row["time"], row["sender"], row["kind"], row.get("media"), row["text"]) for row in rows]
    assert [row.get("actor") for row in rows if row["kind"] == "system"] == ["Me"]
    assert got == [
        ("2023-02-11T09:12:40", "Tomás Ruiz", "text", None, "are we still on for saturday?"),
        ("2023-02-11T09:13:02", "Me", "text", None, "yes!\nbring the maps"),
        ("2023-02-11T09:15:11", "Tomás Ruiz", "text", None, "got them"),
        ("2023-02-11T09:16:00", "Me", "media", "image", "the trail"),
        ("2023-02-11T09:16:30", "Me", "media", "document", ""),
        ("2023-02-11T09:17:00", "Tomás Ruiz", "media", "sticker", ""),
        ("2023-02-11T09:18:00", "Tomás Ruiz", "deleted", None, ""),
        ("2023-02-11T20:01:05", None, "system", None, "Outgoing voice call (accepted, 3m 12s)"),
        ("2023-02-12T08:00:00", "Tomás Ruiz", "text", None, "[2023-02-11, 20:01] is when we talked"),
    ]


def test_owner_is_me_and_chat_falls_back_to_the_file_stem(tmp_path):
    path = tmp_path / "aya-group.txt"
    path.write_text(OLDER, encoding="utf-8")
    loaded = load_exports([path])
    assert loaded.owners == {"Me"}
    assert [(m.time, m.sender, m.text, m.platform, m.chat) for m in loaded.messages] == [
        (datetime(2019, 5, 29, 15, 4), "Me", "How is everyone?", "signal", "aya-group"),
        (datetime(2019, 5, 29, 15, 10), "Aya", "We're great!\nand you?", "signal", "aya-group"),
    ]


def test_a_signal_export_is_never_read_as_whatsapp(tmp_path):
    # The older header is iOS-WhatsApp-shaped; a .md name or the two trailing spaces mark the current one.
    cases = {
        "older.txt": OLDER,
        "chat.md": "[2023-02-11 09:12:40] Aya: hi\n[2023-02-11 09:13:02] Me: hello\n",
        "spaces.txt": "[2023-02-11 09:12:40] Aya: hi  \n[2023-02-11 09:13:02] Me: hello  \n",
    }
    for name, text in cases.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
        rows = parse_cli(tmp_path / name)
        assert {row["platform"] for row in rows} == {"signal"}, name


def test_a_chat_of_quoted_replies_and_reactions_is_still_signal(tmp_path):
    reply = "[2023-03-0{d} 10:00:00] Aya: \n\n> what time?\n> and where?\n\nnoon, at the bridge  \n(- Me: 👍 -)\n"
    path = tmp_path / "replies.txt"
    path.write_text("".join(reply.format(d=day) for day in range(1, 8)), encoding="utf-8")
    rows = parse_cli(path)
    assert [(row["platform"], row["sender"], row["text"]) for row in rows] == [("signal", "Aya", "noon, at the bridge")] * 7


def test_iso_dated_whatsapp_ios_export_stays_whatsapp(tmp_path):
    # Swedish iOS WhatsApp writes ISO dates with seconds and no trailing spaces: not Signal evidence.
    path = tmp_path / "WhatsApp Chat - Aya.txt"
    path.write_text("[2023-02-11 09:12:40] Aya: hej\n[2023-02-11 09:13:02] Lea: hej hej\n", encoding="utf-8")
    rows = parse_cli(path)
    assert [(row["platform"], row["sender"]) for row in rows] == [("whatsapp", "Aya"), ("whatsapp", "Lea")]
