import json
import zipfile

import pytest

from replica.errors import ReplicaInputError
from replica.ingest import load_exports, whatsapp_chat_name
from replica.ingest.limits import Budget, Limits
from replica.ingest.sources import decode_text, iter_files

WHATSAPP = "12/05/2023, 10:20 - Luca: ciao\n12/05/2023, 10:21 - Marco: ehi, città?\n"
TELEGRAM = {"name": "Anna", "type": "personal_chat", "id": 1, "messages": [
    {"id": 1, "type": "message", "date": "2023-05-12T10:00:00", "from": "Anna", "from_id": "user1", "text": "hi"},
]}


def snapshot(root):
    return sorted((str(p.relative_to(root)), p.stat().st_size) for p in root.rglob("*"))


# ---- decoding ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "data",
    [
        "città ✓".encode("utf-8"),
        "città ✓".encode("utf-8-sig"),
        "città ✓".encode("utf-16"),  # native order with BOM
        b"\xff\xfe" + "città ✓".encode("utf-16-le"),
        b"\xfe\xff" + "città ✓".encode("utf-16-be"),
    ],
)
def test_decode_unicode_exports(data):
    assert decode_text(data) == "città ✓"


def test_decode_legacy_single_byte_exports():
    assert decode_text("città – perché".encode("cp1252")) == "città – perché"
    assert decode_text("città".encode("latin-1")) == "città"


def test_binary_data_is_not_text():
    assert decode_text(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR") is None
    assert decode_text(bytes(range(1, 32)) * 50) is None


# ---- folders and zips --------------------------------------------------------------------------------------

def test_directory_is_read_recursively_sorted_skipping_hidden_and_media(tmp_path):
    (tmp_path / "b" / "deep").mkdir(parents=True)
    (tmp_path / ".git").mkdir()
    (tmp_path / "b" / "deep" / "z.txt").write_text("z")
    (tmp_path / "a.txt").write_text("a")
    (tmp_path / ".DS_Store").write_bytes(b"\x00\x00")
    (tmp_path / ".git" / "config").write_text("c")
    (tmp_path / "b" / "photo.JPG").write_bytes(b"\xff\xd8")
    (tmp_path / "b" / "voice.opus").write_bytes(b"OggS")
    skipped = []
    names = [name for name, _ in iter_files(tmp_path, skipped, Budget(Limits.defaults()))]
    assert names == [str(tmp_path / "a.txt"), str(tmp_path / "b" / "deep" / "z.txt")]
    assert skipped == []


def test_zip_is_read_in_memory_without_extracting(tmp_path):
    archive = tmp_path / "chats.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("WhatsApp Chat with Luca.txt", WHATSAPP)
        zf.writestr("Telegram/result.json", json.dumps(TELEGRAM))
        zf.writestr("Media/IMG-001.jpg", b"\xff\xd8\xff")
        zf.writestr("__MACOSX/._result.json", b"\x00\x05")
    before = snapshot(tmp_path)
    result = load_exports([archive])
    assert snapshot(tmp_path) == before
    assert result.files == [f"{archive}!Telegram/result.json", f"{archive}!WhatsApp Chat with Luca.txt"]
    assert [(m.platform, m.chat, m.text) for m in result.messages] == [
        ("telegram", "Anna", "hi"), ("whatsapp", "Luca", "ciao"), ("whatsapp", "Luca", "ehi, città?")]


def test_zip_inside_folder_and_ios_chat_name(tmp_path):
    folder = tmp_path / "exports"
    folder.mkdir()
    with zipfile.ZipFile(folder / "WhatsApp Chat - Anna.zip", "w") as zf:
        zf.writestr("_chat.txt", "[12/05/2023, 10:20:00] Anna: ciao\n[12/05/2023, 10:21:00] Marco: ehi\n")
    result = load_exports([folder])
    assert {m.chat for m in result.messages} == {"Anna"}
    assert result.files == [f"{folder / 'WhatsApp Chat - Anna.zip'}!_chat.txt"]


def test_zip_bomb_is_refused(tmp_path):
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("chat.txt", b"a" * (4 * 1024 * 1024))
    with pytest.raises(ReplicaInputError, match="bomb.zip.*zip bomb"):
        load_exports([archive])


def test_zip_over_the_run_input_limit_is_refused_before_inflating(tmp_path):
    archive = tmp_path / "big.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("a.txt", "x" * 700_000)
        zf.writestr("b.txt", "x" * 700_000)
    with pytest.raises(ReplicaInputError, match=r"big.zip: the exports hold more than 1 MiB.*max_input_mib"):
        load_exports([archive], limits=Limits(max_input_mib=1, max_messages=10))


def test_corrupt_zip_names_the_file(tmp_path):
    archive = tmp_path / "broken.zip"
    archive.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(ReplicaInputError, match="broken.zip"):
        load_exports([archive])


# ---- dispatch by content -----------------------------------------------------------------------------------

def test_whatsapp_detected_by_content_not_name(tmp_path):
    path = tmp_path / "export-2023.dat"
    path.write_text(WHATSAPP, encoding="utf-8")
    result = load_exports([path])
    assert [(m.platform, m.sender, m.chat) for m in result.messages] == [
        ("whatsapp", "Luca", "export-2023"), ("whatsapp", "Marco", "export-2023")]


def test_utf16_and_latin1_whatsapp_files_are_decoded(tmp_path):
    utf16 = tmp_path / "WhatsApp Chat with Luca.txt"
    utf16.write_bytes(WHATSAPP.encode("utf-16"))
    latin = tmp_path / "Chat WhatsApp con Sara.txt"
    latin.write_bytes(WHATSAPP.replace("Luca", "Sara").encode("latin-1"))
    result = load_exports([utf16, latin])
    assert {(m.chat, m.text) for m in result.messages} == {
        ("Luca", "ciao"), ("Luca", "ehi, città?"), ("Sara", "ciao"), ("Sara", "ehi, città?")}


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("WhatsApp Chat with Luca.txt", "Luca"),
        ("Chat WhatsApp con Luca Rossi.txt", "Luca Rossi"),
        ("Discussion WhatsApp avec Léa.txt", "Léa"),
        ("WhatsApp-Chat mit Jan.txt", "Jan"),
        ("x/WhatsApp Chat - Anna.zip!_chat.txt", "Anna"),
        ("chats.zip!Friends/notes.txt", "notes"),
    ],
)
def test_whatsapp_chat_name(name, expected):
    assert whatsapp_chat_name(name) == expected


# ---- bad inputs --------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("name", "data", "match"),
    [
        ("empty.txt", b"", "empty file"),
        ("blank.txt", b"  \n\n", "empty file"),
        ("chat.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00", "binary file"),
        ("result.json", b'{"name": "Anna", "messages": [\n  {"id": 1,', r"result.json:2: invalid JSON"),
        ("other.json", b'{"hello": "world"}', "unknown layout"),
        ("notes.txt", b"shopping list\nmilk\neggs\n", "not a recognised chat export"),
        ("page.html", b"<!DOCTYPE html><html><body>hi</body></html>", "HTML export"),
    ],
)
def test_bad_explicit_file_raises_naming_it(tmp_path, name, data, match):
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(ReplicaInputError, match=match) as info:
        load_exports([path])
    assert str(info.value).startswith(str(path))


def test_missing_path_raises(tmp_path):
    with pytest.raises(ReplicaInputError, match="nope.txt.*no such file"):
        load_exports([tmp_path / "nope.txt"])


def test_directory_run_records_skipped_files(tmp_path):
    (tmp_path / "WhatsApp Chat with Luca.txt").write_text(WHATSAPP, encoding="utf-8")
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "broken.json").write_text('{"messages": [')
    (tmp_path / "readme.txt").write_text("not a chat")
    result = load_exports([tmp_path])
    assert result.files == [str(tmp_path / "WhatsApp Chat with Luca.txt")]
    reasons = dict(result.skipped)
    assert set(reasons) == {str(tmp_path / n) for n in ("empty.txt", "broken.json", "readme.txt")}
    assert reasons[str(tmp_path / "broken.json")].startswith("line 1: invalid JSON")
    assert "empty file" in reasons[str(tmp_path / "empty.txt")]


def test_nothing_parsed_lists_skipped_files(tmp_path):
    (tmp_path / "readme.txt").write_text("not a chat")
    (tmp_path / "data.json").write_text("[1, 2]")
    with pytest.raises(ReplicaInputError, match="no chat messages found.*readme.txt"):
        load_exports([tmp_path])
