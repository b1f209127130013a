"""DiscordChatExporter JSON: senders, system lines, media, edits, bots, repeated ids and the owner of a DM."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from replica.errors import ReplicaInputError
from replica.ingest import load_exports

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def author(uid: str, name: str, nickname: str | None = None, bot: bool = False) -> dict:
    row = {"id": uid, "name": name, "discriminator": "0000", "isBot": bot, "avatarUrl": "https://x.invalid/a.png"}
    if nickname is not None:
        row["nickname"] = nickname
    return row


def message(mid: str, when: str, who: dict, content: str, kind: str = "Default", **extra) -> dict:
    return {"id": mid, "type": kind, "timestamp": when, "timestampEdited": None, "isPinned": False,
            "content": content, "author": who, "attachments": [], "embeds": [], "reactions": [], "mentions": [],
            **extra}


NOOR = author("11", "noor.k", "Noor")
IVAN = author("22", "ivan_p", "Ivan P.")
HOOK = author("33", "Deploy Bot", "Deploy Bot", bot=True)


def dm_export() -> dict:
    return {
        "guild": {"id": "0", "name": "Direct Messages", "iconUrl": ""},
        "channel": {"id": "900", "type": "DirectTextChat", "categoryId": "0", "category": "Private",
                    "name": "Ivan P.", "topic": None},
        "dateRange": {"after": None, "before": None},
        "messages": [
            message("1", "2024-03-02T18:00:05.120+01:00", NOOR, "did the build pass?"),
            message("2", "2024-03-02T18:01:40.000+01:00", IVAN, "yes, finally",
                    timestampEdited="2024-03-02T18:02:00.000+01:00"),
            message("2", "2024-03-02T18:01:40.000+01:00", IVAN, "yes, finally",
                    timestampEdited="2024-03-02T18:02:00.000+01:00"),
            message("3", "2024-03-02T18:02:10.000+01:00", IVAN, "look",
                    attachments=[{"id": "5", "url": "https://cdn.invalid/shot.PNG", "fileName": "shot.PNG",
                                  "fileSizeBytes": 10}]),
            message("4", "2024-03-02T18:03:00.000+01:00", NOOR, "",
                    stickers=[{"id": "6", "name": "Wave", "format": "Png", "sourceUrl": "https://x.invalid"}]),
            message("5", "2024-03-02T18:04:00.000+01:00", NOOR, "nice", kind="Reply",
                    reference={"messageId": "3", "channelId": "900", "guildId": None}),
            message("6", "2024-03-02T18:05:00.000+01:00", IVAN, "Started a call that lasted 12 minutes.",
                    kind="Call", callEndedTimestamp="2024-03-02T18:17:00.000+01:00"),
            message("7", "2024-03-02T18:06:00.000+01:00", HOOK, "build #812 green"),
            message("8", "2024-03-02T18:07:00.000+01:00", IVAN, "",
                    embeds=[{"title": "a link card", "url": "https://example.invalid"}]),
        ],
        "messageCount": 8,
    }


def test_dm_export_through_the_cli(tmp_path):
    path = tmp_path / "Direct Messages - Ivan P. [900].json"
    path.write_text(json.dumps(dm_export()), encoding="utf-8")
    result = subprocess.run([sys.executable, "-m", "replica.cli", "parse", str(path)], capture_output=True,
                            text=True, env=ENV, timeout=120, check=True)
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert {(row["platform"], row["chat"]) for row in rows} == {("discord", "Ivan P.")}
    got = [(row["time"], row["sender"], row["kind"], row.get("media"), row["text"], row["edited"], row["forwarded"])
           for row in rows]
    assert [row.get("actor") for row in rows] == [None] * 5 + ["Ivan P."] + [None] * 2
    assert got == [
        ("2024-03-02T18:00:05", "Noor", "text", None, "did the build pass?", False, False),
        ("2024-03-02T18:01:40", "Ivan P.", "text", None, "yes, finally", True, False),
        ("2024-03-02T18:02:10", "Ivan P.", "media", "image", "look", False, False),
        ("2024-03-02T18:03:00", "Noor", "media", "sticker", "", False, False),
        ("2024-03-02T18:04:00", "Noor", "text", None, "nice", False, False),
        ("2024-03-02T18:05:00", None, "system", None, "Started a call that lasted 12 minutes.", False, False),
        ("2024-03-02T18:06:00", "Deploy Bot", "text", None, "build #812 green", False, True),
        ("2024-03-02T18:07:00", "Ivan P.", "media", "share", "", False, False),
    ]


def test_owner_of_a_dm_is_the_author_the_channel_name_does_not_list(tmp_path):
    path = tmp_path / "dm.json"
    path.write_text(json.dumps(dm_export()), encoding="utf-8")
    assert load_exports([path]).owners == {"Noor", "noor.k"}


def test_named_group_and_server_channels_name_no_owner(tmp_path):
    group = dm_export()
    group["channel"].update(type="DirectGroupTextChat", name="weekend plans")
    server = dm_export()
    server["guild"] = {"id": "77", "name": "Climbing Club", "iconUrl": ""}
    server["channel"].update(type="GuildTextChat", name="general")
    (tmp_path / "group.json").write_text(json.dumps(group), encoding="utf-8")
    (tmp_path / "server.json").write_text(json.dumps(server), encoding="utf-8")
    loaded = load_exports([tmp_path / "group.json", tmp_path / "server.json"])
    assert loaded.owners == set()
    assert {m.chat for m in loaded.messages} == {"weekend plans", "Climbing Club #general"}


def test_message_without_timestamp_is_a_one_line_error(tmp_path):
    broken = dm_export()
    del broken["messages"][3]["timestamp"]
    path = tmp_path / "dm.json"
    path.write_text(json.dumps(broken), encoding="utf-8")
    result = subprocess.run([sys.executable, "-m", "replica.cli", "parse", str(path)], capture_output=True,
                            text=True, env=ENV, timeout=120)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert str(path) in result.stderr and "message id 3" in result.stderr and "DiscordChatExporter" in result.stderr


def test_fields_of_any_type_never_crash_the_parser(tmp_path):
    """Every field of a message, its author and the channel set to every wrong type: parsed, or one clear error."""
    odd = [None, 7, -1.5, True, "", "x", [], [1, {"a": 2}], {}, {"nested": [None]}]
    targets = [
        lambda export: export["channel"],
        lambda export: export["messages"][3],
        lambda export: export["messages"][5],
        lambda export: export["messages"][1]["author"],
    ]
    path = tmp_path / "fuzz.json"
    for pick in targets:
        for key in sorted(pick(dm_export())):
            for value in odd:
                export = dm_export()
                pick(export)[key] = value
                path.write_text(json.dumps(export), encoding="utf-8")
                try:
                    messages = load_exports([path]).messages
                except ReplicaInputError as err:
                    assert str(path) in str(err) and "\n" not in str(err)
                else:
                    assert {m.platform for m in messages} == {"discord"}
                    assert all(isinstance(m.sender, str | None) and isinstance(m.text, str) for m in messages)
