import json
from datetime import datetime

import pytest

from replica.errors import ReplicaInputError
from replica.ingest import load_exports
from replica.ingest.messenger import looks_like_messenger, parse_messenger, repair_mojibake

BASE_MS = 1_682_935_200_000  # 2023-05-01 10:00:00 UTC


@pytest.fixture(autouse=True)
def utc(monkeypatch):
    monkeypatch.setenv("REPLICA_TZ", "UTC")


def mojibake(text: str) -> str:
    """What Facebook writes: UTF-8 bytes read as Latin-1."""
    return text.encode("utf-8").decode("latin-1")


def _msg(minute, content=None, sender="Luca Rossi", **extra):
    raw = {"sender_name": sender, "timestamp_ms": BASE_MS + minute * 60_000, **extra}
    if content is not None:
        raw["content"] = content
    return raw


def _part(messages, title="Luca Rossi", **extra):
    return {"participants": [{"name": "Luca Rossi"}, {"name": "Marco Bianchi"}], "messages": messages,
            "title": title, "is_still_participant": True, "thread_path": "inbox/lucarossi_123", **extra}


def _one(raw):
    [message] = parse_messenger([_part([raw])], source="message_1.json")
    return message


def test_text_message_time_is_local_naive_in_replica_tz():
    message = _one(_msg(0, "ciao"))
    assert message.time == datetime(2023, 5, 1, 10, 0) and message.time.tzinfo is None
    assert (message.sender, message.text, message.kind, message.platform, message.chat) == (
        "Luca Rossi", "ciao", "text", "messenger", "Luca Rossi")


def test_replica_tz_override_changes_wall_clock(monkeypatch, tmp_path):
    monkeypatch.setenv("REPLICA_TZ", "Europe/Rome")
    path = tmp_path / "message_1.json"
    path.write_text(json.dumps(_part([_msg(0, "ciao")])), encoding="utf-8")
    assert load_exports([path]).messages[0].time == datetime(2023, 5, 1, 12, 0)
    # data.timezone wins over the environment variable
    assert load_exports([path], timezone="America/New_York").messages[0].time == datetime(2023, 5, 1, 6, 0)


def test_unknown_replica_tz_is_an_input_error(monkeypatch, tmp_path):
    monkeypatch.setenv("REPLICA_TZ", "Mars/Olympus")
    path = tmp_path / "message_1.json"
    path.write_text(json.dumps(_part([_msg(0, "ciao")])), encoding="utf-8")
    with pytest.raises(ReplicaInputError, match="REPLICA_TZ"):
        load_exports([path])


def test_parts_are_merged_deduplicated_and_sorted_oldest_first():
    newest = _part([_msg(3, "tre"), _msg(2, "due")])
    oldest = _part([_msg(2, "due"), _msg(1, "uno"), _msg(0, "zero")])
    messages = parse_messenger([newest, oldest], source="inbox/luca/message_1.json")
    assert [m.text for m in messages] == ["zero", "uno", "due", "tre"]


def test_same_second_messages_keep_conversation_order():
    part = _part([_msg(1, "seconda"), _msg(1, "prima"), _msg(0, "zero")])
    assert [m.text for m in parse_messenger([part], source="x")] == ["zero", "prima", "seconda"]


def test_mojibake_is_repaired_everywhere_and_correct_text_is_untouched():
    part = _part([_msg(0, mojibake("Ciao è 😂"), sender=mojibake("Niccolò"))], title=mojibake("Niccolò & co"))
    [message] = parse_messenger([part], source="x")
    assert (message.text, message.sender, message.chat) == ("Ciao è 😂", "Niccolò", "Niccolò & co")
    assert repair_mojibake("Ciao Ã¨") == "Ciao è"
    assert repair_mojibake("già fatto è") == "già fatto è"
    assert repair_mojibake("plain") == "plain"


def test_reactions_are_not_messages_and_reaction_lines_are_system():
    reacted = _msg(0, "bella!", reactions=[{"reaction": mojibake("❤"), "actor": "Marco Bianchi"}])
    messages = parse_messenger([_part([
        _msg(2, "Liked a message"),
        _msg(1, "Reacted ❤ to your message ", sender="Marco Bianchi"),
        reacted,
    ])], source="x")
    assert [(m.kind, m.text) for m in messages] == [
        ("text", "bella!"), ("system", "Reacted ❤ to your message "), ("system", "Liked a message")]


def test_italian_reaction_line_is_system():
    assert _one(_msg(0, "Luca Rossi ha reagito con 😂 al tuo messaggio")).kind == "system"


def test_attachment_lines_become_media_without_text():
    photo = _one(_msg(0, "Luca Rossi sent a photo.", photos=[{"uri": "photos/1.jpg"}]))
    assert (photo.kind, photo.media, photo.text) == ("media", "image", "")
    bare = _one(_msg(0, "Hai inviato un allegato."))
    assert (bare.kind, bare.media, bare.text) == ("media", "other", "")
    you = _one(_msg(0, "You sent an attachment.", sender="Marco Bianchi", files=[{"uri": "files/a.pdf"}]))
    assert (you.kind, you.media, you.text) == ("media", "document", "")


def test_typed_sentence_about_a_photo_stays_text():
    assert _one(_msg(0, "I sent a photo.")).kind == "text"


def test_real_caption_is_kept_on_media():
    message = _one(_msg(0, "guarda che vista", photos=[{"uri": "photos/1.jpg"}]))
    assert (message.kind, message.media, message.text) == ("media", "image", "guarda che vista")


@pytest.mark.parametrize(
    ("extra", "media"),
    [
        ({"videos": [{"uri": "v.mp4"}]}, "video"),
        ({"audio_files": [{"uri": "a.mp4"}]}, "audio"),
        ({"gifs": [{"uri": "g.gif"}]}, "gif"),
        ({"sticker": {"uri": "s.png"}}, "sticker"),
        ({"share": {"link": "https://x.it"}}, "share"),
    ],
)
def test_attachment_keys_map_to_media_types(extra, media):
    message = _one(_msg(0, None, **extra))
    assert (message.kind, message.media, message.text) == ("media", media, "")


def test_unsent_message_is_deleted():
    message = _one(_msg(0, "", is_unsent=True))
    assert (message.kind, message.text) == ("deleted", "")


def test_call_is_system():
    assert _one(_msg(0, "Luca Rossi called you.", call_duration=30, type="Call")).kind == "system"


def test_looks_like_messenger():
    assert looks_like_messenger(_part([_msg(0, "x")]))
    assert looks_like_messenger(_part([]))
    assert not looks_like_messenger({"name": "x", "type": "personal_chat", "id": 1, "messages": []})
    assert not looks_like_messenger({"participants": [], "messages": [{"content": "no time"}]})


def test_load_exports_merges_parts_of_one_folder(tmp_path):
    thread = tmp_path / "inbox" / "lucarossi_123"
    thread.mkdir(parents=True)
    part_1 = _part([_msg(3, "tre"), _msg(2, mojibake("perché"))])
    part_2 = _part([_msg(1, "uno")])
    del part_1["thread_path"], part_2["thread_path"]
    (thread / "message_1.json").write_text(json.dumps(part_1), encoding="utf-8")
    (thread / "message_2.json").write_text(json.dumps(part_2), encoding="utf-8")
    (thread / "photos").mkdir()
    (thread / "photos" / "1.jpg").write_bytes(b"\xff\xd8\xff\xe0")
    other = tmp_path / "inbox" / "anna_456"
    other.mkdir()
    anna = _part([_msg(0, "ciao")], title="Anna", thread_path="inbox/anna_456")
    (other / "message_1.json").write_text(json.dumps(anna), encoding="utf-8")
    result = load_exports([tmp_path / "inbox"])
    assert [(m.chat, m.text) for m in result.messages] == [
        ("Anna", "ciao"), ("Luca Rossi", "uno"), ("Luca Rossi", "perché"), ("Luca Rossi", "tre")]
    assert sorted(result.files) == sorted(str(p) for p in tmp_path.rglob("message_*.json"))
    assert result.skipped == []


def test_end_to_end_encrypted_export_schema_is_read(tmp_path):
    """Messenger's 2024+ end-to-end-encrypted chats export camelCase keys and plain UTF-8."""
    from replica.ingest import load_exports

    part = {
        "participants": ["Marco Bianchi", "Giulia Neri"],
        "threadName": "Giulia Neri",
        "messages": [
            {"isUnsent": False, "media": [], "reactions": [], "senderName": "Giulia Neri",
             "text": "Ci vediamo là?", "timestamp": 1_700_000_060_000, "type": "text"},
            {"isUnsent": False, "media": [{"uri": "./media/photo_1.jpg"}], "reactions": [], "senderName": "Marco Bianchi",
             "text": "", "timestamp": 1_700_000_030_000, "type": "media"},
            {"isUnsent": True, "media": [], "reactions": [], "senderName": "Marco Bianchi",
             "text": "", "timestamp": 1_700_000_000_000, "type": "text"},
        ],
    }
    folder = tmp_path / "e2ee" / "giulia_1"
    folder.mkdir(parents=True)
    (folder / "message_1.json").write_text(json.dumps(part, ensure_ascii=False), encoding="utf-8")
    messages = load_exports([tmp_path / "e2ee"]).messages
    assert [(m.sender, m.kind, m.media, m.text) for m in messages] == [
        ("Marco Bianchi", "deleted", None, ""),
        ("Marco Bianchi", "media", "image", ""),
        ("Giulia Neri", "text", None, "Ci vediamo là?"),
    ]
    assert {m.chat for m in messages} == {"Giulia Neri"} and {m.platform for m in messages} == {"messenger"}
