import json
from datetime import datetime

import pytest

from replica.errors import ReplicaInputError
from replica.ingest import load_exports
from replica.ingest.telegram import looks_like_telegram, parse_telegram


def _msg(id_, text="", sender="Luca", **extra):
    return {"id": id_, "type": "message", "date": f"2023-05-01T10:{id_:02d}:00", "from": sender,
            "from_id": "user7", "text": text, **extra}


def _chat(messages, name="Luca", id_=123):
    return {"name": name, "type": "personal_chat", "id": id_, "messages": messages}


def _parse(messages):
    result, owners = parse_telegram(_chat(messages), source="result.json")
    return result, owners


def test_plain_text_message_has_time_sender_and_chat():
    [message], owners = _parse([_msg(1, "ciao")])
    assert message.time == datetime(2023, 5, 1, 10, 1)
    assert (message.sender, message.text, message.kind, message.platform, message.chat) == (
        "Luca", "ciao", "text", "telegram", "Luca")
    assert not message.forwarded and not message.edited
    assert owners == set()


def test_text_list_with_entities_is_joined_without_added_spaces():
    parts = ["guarda ", {"type": "link", "text": "https://x.it"}, "!", {"type": "bold", "text": "Dai"}]
    [message], _ = _parse([_msg(1, parts)])
    assert message.text == "guarda https://x.it!Dai"


def test_text_entities_are_preferred_over_text():
    entities = [{"type": "bold", "text": "Ciao"}, {"type": "plain", "text": "!"}]
    [message], _ = _parse([_msg(1, "stale", text_entities=entities)])
    assert message.text == "Ciao!"


def test_service_message_is_system_without_sender_and_keeps_its_actor():
    service = {"id": 2, "type": "service", "date": "2023-05-01T10:02:00", "actor": "Luca", "actor_id": "user7",
               "action": "phone_call", "text": ""}
    anonymous = {"id": 3, "type": "service", "date": "2023-05-01T10:03:00", "action": "pin_message", "text": ""}
    first, second = _parse([service, anonymous])[0]
    assert (first.kind, first.sender, first.actor) == ("system", None, "Luca")
    assert (second.kind, second.sender, second.actor) == ("system", None, None)
    assert first.to_json()["actor"] == "Luca" and "actor" not in second.to_json()


@pytest.mark.parametrize(
    ("extra", "media"),
    [
        ({"photo": "photos/p.jpg", "width": 10, "height": 10}, "image"),
        ({"file": "stickers/s.webp", "media_type": "sticker", "sticker_emoji": "😂"}, "sticker"),
        ({"file": "video_files/v.mp4", "media_type": "video_file"}, "video"),
        ({"file": "voice_messages/a.ogg", "media_type": "voice_message"}, "audio"),
        ({"file": "files/a.mp3", "media_type": "audio_file"}, "audio"),
        ({"file": "video_files/g.mp4", "media_type": "animation"}, "gif"),
        ({"file": "round_video_messages/r.mp4", "media_type": "video_message"}, "video"),
        ({"file": "files/doc.pdf", "mime_type": "application/pdf"}, "document"),
        ({"location_information": {"latitude": 45.4, "longitude": 9.2}}, "location"),
        ({"contact_information": {"first_name": "Anna", "phone_number": "+39 333"}}, "contact"),
        ({"poll": {"question": "Pizza?", "answers": []}}, "poll"),
    ],
)
def test_media_messages_map_their_type(extra, media):
    [message], _ = _parse([_msg(1, "", **extra)])
    assert (message.kind, message.media, message.text) == ("media", media, "")


def test_photo_caption_is_kept_as_text():
    [message], _ = _parse([_msg(1, "al mare", photo="photos/p.jpg")])
    assert (message.kind, message.media, message.text) == ("media", "image", "al mare")


def test_forwarded_via_bot_and_edited_flags():
    forwarded, via_bot, edited = _parse([
        _msg(1, "news", forwarded_from="Canale"),
        _msg(2, "gif", via_bot="@gif"),
        _msg(3, "corretto", edited="2023-05-01T10:05:00", edited_unixtime="1682928300"),
    ])[0]
    assert forwarded.forwarded and via_bot.forwarded and not edited.forwarded
    assert edited.edited and not forwarded.edited


def test_deleted_account_sender():
    [message], _ = _parse([_msg(1, "ciao", sender=None)])
    assert message.sender == "Deleted Account"


def test_full_export_reads_chats_and_left_chats_and_declares_owner():
    export = {
        "about": "Here is the data you requested.",
        "personal_information": {"user_id": 42, "first_name": "Marco", "last_name": "Bianchi",
                                 "phone_number": "+39 333 0000000", "username": "@marcob"},
        "chats": {"about": "", "list": [
            _chat([_msg(1, "ciao"), _msg(2, "ehi", sender="Marco B.", from_id="user42")], name="Luca", id_=1),
            _chat([_msg(3, "buongiorno", sender="Anna")], name="Anna", id_=2),
        ]},
        "left_chats": {"about": "", "list": [_chat([_msg(4, "addio", sender="Gruppo")], name="Vecchio gruppo")]},
    }
    assert looks_like_telegram(export)
    messages, owners = parse_telegram(export, source="result.json")
    assert [(m.chat, m.text) for m in messages] == [
        ("Luca", "ciao"), ("Luca", "ehi"), ("Anna", "buongiorno"), ("Vecchio gruppo", "addio")]
    assert owners == {"Marco Bianchi", "marcob", "Marco B."}


def test_looks_like_telegram_rejects_other_json():
    assert looks_like_telegram(_chat([]))
    assert not looks_like_telegram({"participants": [], "messages": []})
    assert not looks_like_telegram({"name": "x"})
    assert not looks_like_telegram([1, 2])


def test_message_without_date_names_the_file():
    with pytest.raises(ReplicaInputError, match="result.json.*date"):
        parse_telegram(_chat([{"id": 9, "type": "message", "text": "x"}]), source="result.json")


def test_load_exports_reads_result_json_and_returns_owner(tmp_path):
    export = {"personal_information": {"user_id": 42, "first_name": "Marco", "last_name": ""},
              "chats": {"list": [_chat([_msg(2, "dopo"), _msg(1, "prima")])]}}
    path = tmp_path / "result.json"
    path.write_text(json.dumps(export, ensure_ascii=False), encoding="utf-8")
    result = load_exports([path])
    assert [m.text for m in result.messages] == ["prima", "dopo"]
    assert result.owners == {"Marco"}
    assert result.files == [str(path)] and result.skipped == []


# ---- data.timezone: epoch times are read in the configured zone ------------------------------------------------
EPOCH_ONLY = {"chats": {"list": [_chat([
    {"id": 1, "type": "message", "date_unixtime": "1682935200", "from": "Luca", "from_id": "user7", "text": "ciao"},
])]}}  # 2023-05-01 10:00 UTC, and no `date` wall clock


@pytest.mark.parametrize(("zone", "wall_clock"), [("UTC", datetime(2023, 5, 1, 10, 0)),
                                                   ("Asia/Tokyo", datetime(2023, 5, 1, 19, 0)),
                                                   ("America/New_York", datetime(2023, 5, 1, 6, 0))])
def test_data_timezone_sets_the_wall_clock_of_epoch_times(tmp_path, monkeypatch, zone, wall_clock):
    monkeypatch.setenv("REPLICA_TZ", "Europe/Rome")  # the fallback: data.timezone wins over it
    path = tmp_path / "result.json"
    path.write_text(json.dumps(EPOCH_ONLY), encoding="utf-8")
    assert load_exports([path], timezone=zone).messages[0].time == wall_clock


def test_data_timezone_reaches_the_reader_through_the_data_config(tmp_path):
    from replica.prepare.config import parse_data_config
    from replica.prepare.pipeline import _load
    from tests.test_prepare_pipeline import data_cfg

    path = tmp_path / "result.json"
    path.write_text(json.dumps(EPOCH_ONLY), encoding="utf-8")
    cfg = parse_data_config(data_cfg(tmp_path, exports=[str(path)], me=["Marco"], timezone="Asia/Tokyo"))
    assert _load(cfg, lambda line: None).messages[0].time == datetime(2023, 5, 1, 19, 0)


def test_replica_parse_timezone_flag(tmp_path):
    from tests.helpers import assert_one_line_error
    from tests.serve_helpers import replica_cli

    path = tmp_path / "result.json"
    path.write_text(json.dumps(EPOCH_ONLY), encoding="utf-8")
    tokyo = replica_cli("parse", str(path), "--timezone", "Asia/Tokyo")
    assert tokyo.returncode == 0, tokyo.stderr
    assert json.loads(tokyo.stdout)["time"].startswith("2023-05-01T19:00")
    unknown = replica_cli("parse", str(path), "--timezone", "Mars/Olympus")
    assert_one_line_error(unknown, "replica parse: error:", "--timezone", "'Mars/Olympus' is not a known time zone")
