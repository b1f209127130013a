"""Damaged, hostile and odd inputs: each gives one line + exit 2, or a clean exit 0 where the value has a sensible
reading; never a traceback, a hang or unbounded memory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from replica.cli import main
from replica.ingest import load_exports
from replica.ingest.limits import Limits

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "REPLICA_TZ": "UTC"}
# Runs the CLI, then writes the process's peak RSS (VmHWM, KiB) to $RSS_OUT, whatever happened.
RSS_PROBE = (
    "import os, re, sys\n"
    "from replica.cli import main\n"
    "try:\n    code = main(sys.argv[1:])\n"
    "finally:\n"
    "    peak = re.search(r'VmHWM:\\s*(\\d+)', open('/proc/self/status').read()).group(1)\n"
    "    open(os.environ['RSS_OUT'], 'w').write(peak)\n"
    "sys.exit(code)\n"
)
WHATSAPP = "".join(f"0{day}/03/2021, 21:0{minute} - Anna Verdi: messaggio {day}{minute}\n"
                   for day in range(1, 8) for minute in range(10))


@pytest.fixture(autouse=True)
def utc(monkeypatch):
    monkeypatch.setenv("REPLICA_TZ", "UTC")


def cli(capsys, *args: str) -> tuple[int, str, str]:
    """`replica ARGS` in this process (the console script's entry function): (exit code, stdout, stderr)."""
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def run(*args: str, cwd: Path, timeout: float = 60, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "replica.cli", *args], cwd=cwd, env={**ENV, **(env or {})},
                          capture_output=True, text=True, timeout=timeout)


def one_error_line(err: str, *fragments: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("replica: error: "), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def telegram(*messages: dict, **top) -> dict:
    return {"name": "Bob Stone", "type": "personal_chat", "id": 7, "messages": list(messages), **top}


def tg_message(**fields) -> dict:
    return {"id": 1, "type": "message", "date": "2021-03-13T08:00:00", "from": "Bob Stone", "from_id": "user7",
            "text": "morning!", **fields}


def messenger(*messages: dict, **top) -> dict:
    return {"participants": [{"name": "Carla Neri"}, {"name": "Marco Bianchi"}], "messages": list(messages),
            "title": "Carla Neri", **top}


def fb_message(**fields) -> dict:
    return {"sender_name": "Carla Neri", "timestamp_ms": 1615028400000, "content": "ci vediamo?", **fields}


def write_json(path: Path, obj: object) -> Path:
    path.write_text(json.dumps(obj, ensure_ascii=False), encoding="utf-8")
    return path


# ---- files that are not files ------------------------------------------------------------------------------
def test_dev_zero_is_refused_at_once_without_reading(tmp_path):
    result = run("parse", "/dev/zero", cwd=tmp_path, timeout=30)
    assert result.returncode == 2
    one_error_line(result.stderr, "/dev/zero", "not a regular file")


def test_fifo_given_directly_is_refused_without_opening(tmp_path):
    fifo = tmp_path / "chat.txt"
    os.mkfifo(fifo)
    result = run("parse", str(fifo), cwd=tmp_path, timeout=30)  # opening a FIFO with no writer would block
    assert result.returncode == 2
    one_error_line(result.stderr, str(fifo), "not a regular file")


def test_fifo_inside_a_folder_is_skipped_and_the_rest_parsed(tmp_path):
    folder = tmp_path / "exports"
    folder.mkdir()
    os.mkfifo(folder / "pipe.txt")
    (folder / "WhatsApp Chat with Anna Verdi.txt").write_text(WHATSAPP, encoding="utf-8")
    result = run("senders", str(folder), cwd=tmp_path, timeout=30)
    assert result.returncode == 0, result.stderr
    assert "Anna Verdi" in result.stdout
    [line] = result.stderr.splitlines()
    assert line.startswith("replica: skipped ") and "pipe.txt" in line and "not a regular" in line


# ---- limits per run ----------------------------------------------------------------------------------------
def test_zip_of_500_one_mib_members_stops_quickly_with_bounded_memory(tmp_path):
    member = (WHATSAPP * (1024 * 1024 // len(WHATSAPP) + 1)).encode()[: 1024 * 1024]
    archive = tmp_path / "many.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for index in range(500):
            zf.writestr(f"chat_{index:03}.txt", member)
    assert archive.stat().st_size < 20 * 1024 * 1024
    for limit_args, fragment in (([], "MiB"), (["--max-input-mib", "64"], "more than 64 MiB")):
        rss_file = tmp_path / "rss"
        result = subprocess.run(
            [sys.executable, "-c", RSS_PROBE, "parse", *limit_args, str(archive)], cwd=tmp_path,
            env={**ENV, "RSS_OUT": str(rss_file)}, capture_output=True, text=True, timeout=60,
        )
        assert result.returncode == 2
        one_error_line(result.stderr, "many.zip", fragment)
        assert int(rss_file.read_text()) < 200 * 1024  # KiB: nothing was inflated


def test_archive_of_many_small_members_that_expands_too_much_is_a_zip_bomb(tmp_path, capsys):
    archive = tmp_path / "small-members.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for index in range(200):
            zf.writestr(f"chat_{index:03}.txt", b"a" * 512 * 1024)  # each under the per-member ratio check
    code, _, err = cli(capsys, "parse", str(archive))
    assert code == 2
    one_error_line(err, "small-members.zip", "(all members)", "zip bomb")


def test_folder_run_stops_at_the_total_input_limit_as_it_streams(tmp_path):
    folder = tmp_path / "exports"
    folder.mkdir()
    body = (WHATSAPP * (1024 * 1024 // len(WHATSAPP) + 1))[: 1024 * 1024 - 100]
    for index in range(1, 6):
        (folder / f"chat_{index}.txt").write_text(body, encoding="utf-8")
    limits = Limits(max_input_mib=3, max_messages=10**9)
    with pytest.raises(Exception) as caught:
        load_exports([folder], limits=limits)
    assert "chat_4.txt: the exports hold more than 3 MiB" in str(caught.value)
    result = run("parse", "--max-input-mib", "3", str(folder), cwd=tmp_path)
    one_error_line(result.stderr, "chat_4.txt", "max_input_mib")
    assert result.stdout == ""


def test_message_limit_stops_the_run_naming_the_key(tmp_path, capsys):
    chat = tmp_path / "chat.txt"
    chat.write_text(WHATSAPP, encoding="utf-8")
    code, out, err = cli(capsys, "parse", "--max-messages", "69", str(chat))
    assert (code, out) == (2, "")
    one_error_line(err, "chat.txt", "more than 69 messages", "data.max_messages")
    code, out, _ = cli(capsys, "parse", "--max-messages", "70", str(chat))
    assert code == 0 and len(out.splitlines()) == 70


def test_huge_text_file_passes_the_message_limit_on_its_first_lines(tmp_path, capsys):
    one_line = tmp_path / "one_line.txt"
    one_line.write_text(WHATSAPP * 100, encoding="utf-8")  # 7,000 one-line messages
    code, out, err = cli(capsys, "parse", "--max-messages", "100", str(one_line))
    assert (code, out) == (2, "")
    one_error_line(err, "one_line.txt", "more than 100 messages")
    multi_line = tmp_path / "multi_line.txt"  # 70 messages of three lines: more lines than the limit, not messages
    multi_line.write_text(WHATSAPP.replace("\n", "\nsecond line\nthird line\n"), encoding="utf-8")
    code, out, _ = cli(capsys, "parse", "--max-messages", "70", str(multi_line))
    assert code == 0 and [json.loads(row)["text"].count("\n") for row in out.splitlines()] == [2] * 70


def test_limits_are_data_config_keys_checked_up_front(tmp_path):
    result = run("prepare", f"data.exports=[{tmp_path}]", "data.max_messages=0", f"data.datasets_dir={tmp_path / 'd'}",
                 cwd=tmp_path)
    assert result.returncode == 2
    one_error_line(result.stderr, "data.max_messages")


# ---- zip members -------------------------------------------------------------------------------------------
def _flip_deflated_byte(archive: Path, member: str) -> None:
    """Corrupt one byte in the middle of a member's compressed data (the central directory stays intact)."""
    with zipfile.ZipFile(archive) as zf:
        info = zf.getinfo(member)
    data = bytearray(archive.read_bytes())
    name_len = int.from_bytes(data[info.header_offset + 26: info.header_offset + 28], "little")
    extra_len = int.from_bytes(data[info.header_offset + 28: info.header_offset + 30], "little")
    start = info.header_offset + 30 + name_len + extra_len
    data[start + info.compress_size // 2] ^= 0xFF
    archive.write_bytes(bytes(data))


def test_damaged_zip_member_is_skipped_and_named(tmp_path, capsys):
    archive = tmp_path / "exports.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("WhatsApp Chat with Anna Verdi.txt", WHATSAPP)
        zf.writestr("broken.txt", WHATSAPP * 20)
    _flip_deflated_byte(archive, "broken.txt")
    code, out, err = cli(capsys, "parse", str(archive))
    assert code == 0 and len(out.splitlines()) == 70
    [line] = err.splitlines()
    assert line.startswith(f"replica: skipped {archive}!broken.txt: damaged zip member")
    assert line.count("broken.txt") == 1  # zipfile's own message quotes the member name: left out


def test_zip_whose_only_member_is_damaged_is_one_line(tmp_path, capsys):
    archive = tmp_path / "exports.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("broken.txt", WHATSAPP * 20)
    _flip_deflated_byte(archive, "broken.txt")
    code, _, err = cli(capsys, "parse", str(archive))
    assert code == 2
    one_error_line(err, "broken.txt", "damaged zip member")


# ---- JSON limits -------------------------------------------------------------------------------------------
def test_json_nested_100000_deep_is_one_line(tmp_path, capsys):
    path = tmp_path / "result.json"
    path.write_text('{"messages": ' + "[" * 100_000 + "]" * 100_000 + "}", encoding="utf-8")
    code, _, err = cli(capsys, "parse", str(path))
    assert code == 2
    one_error_line(err, "result.json", "nested too deeply")


def test_integer_of_5000_digits_is_one_line(tmp_path, capsys):
    path = tmp_path / "result.json"
    path.write_text(json.dumps(telegram(tg_message())).replace('"id": 1,', '"id": ' + "9" * 5000 + ","),
                    encoding="utf-8")
    code, _, err = cli(capsys, "parse", str(path))
    assert code == 2
    one_error_line(err, "result.json", "number too long")


def test_json_of_many_tiny_lists_is_refused_before_parsing(tmp_path, capsys):
    path = tmp_path / "result.json"
    path.write_text('{"messages": [' + ",".join(["[]"] * 100_000) + "]}", encoding="utf-8")
    code, _, err = cli(capsys, "parse", "--max-messages", "1000", str(path))
    assert code == 2
    one_error_line(err, "result.json", "objects and lists", "max_messages")


# ---- Telegram fields ---------------------------------------------------------------------------------------
def test_telegram_numeric_sender_is_read_as_text_through_senders_and_prepare(tmp_path, capsys):
    path = write_json(tmp_path / "result.json", telegram(
        tg_message(id=1, **{"from": 123}), tg_message(id=2, date="2021-03-13T08:01:00", text="hey", **{"from": "Me"}),
        tg_message(id=3, date="2021-03-13T08:02:00", text="ok?", **{"from": 123}),
        tg_message(id=4, date="2021-03-13T08:03:00", text="sure", **{"from": "Me"}),
    ))
    code, out, err = cli(capsys, "parse", str(path))
    assert (code, err) == (0, "")
    assert [json.loads(line)["sender"] for line in out.splitlines()] == ["123", "Me", "123", "Me"]
    code, out, _ = cli(capsys, "senders", "--json", str(path))
    assert code == 0 and {row["sender"] for row in json.loads(out)} == {"123", "Me"}
    result = run("prepare", f"data.exports=[{path}]", "data.me=[Me]", f"data.datasets_dir={tmp_path / 'datasets'}",
                 "data.split=[1.0,0.0,0.0]", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    (train,) = (tmp_path / "datasets").rglob("train.jsonl")
    assert train.read_text(encoding="utf-8").strip()


@pytest.mark.parametrize(
    ("fields", "key"),
    [
        ({"from": {"name": "Bob"}}, "'from'"),
        ({"from": ["Bob"]}, "'from'"),
        ({"media_type": ["sticker"]}, "'media_type'"),
        ({"type": ["service"]}, "'type'"),
        ({"text": [["nested"]]}, "'text'"),
        ({"text_entities": "plain"}, "'text_entities'"),
        ({"date": None}, "'date'"),
        ({"date": "not a date", "date_unixtime": "9" * 30}, "'date'"),
    ],
)
def test_telegram_field_of_the_wrong_type_is_one_line_naming_the_key(tmp_path, capsys, fields, key):
    path = write_json(tmp_path / "result.json", telegram(tg_message(), tg_message(id=9, **fields)))
    code, out, err = cli(capsys, "parse", str(path))
    assert (code, out) == (2, "")
    line = one_error_line(err, "result.json", "message 2 (id 9)", key)
    assert "Bob" not in line  # a value may be private: only its type is named


def test_telegram_text_as_one_entity_object_is_read(tmp_path, capsys):
    path = write_json(tmp_path / "result.json", telegram(tg_message(text={"type": "bold", "text": "ciao"})))
    code, out, _ = cli(capsys, "parse", str(path))
    assert code == 0 and json.loads(out)["text"] == "ciao"


def test_telegram_falls_back_from_empty_entities_to_text_and_from_date_to_unixtime(tmp_path, capsys):
    path = write_json(tmp_path / "result.json", telegram(
        tg_message(text="kept", text_entities=[]),
        tg_message(id=2, date="garbage", date_unixtime="1615629600", text=[{"type": "bold", "text": "b"}, "c"]),
    ))
    code, out, _ = cli(capsys, "parse", str(path))
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0
    assert [(row["time"], row["text"]) for row in rows] == [("2021-03-13T08:00:00", "kept"),
                                                           ("2021-03-13T10:00:00", "bc")]


def test_telegram_single_chat_without_top_level_keys_is_read(tmp_path, capsys):
    path = write_json(tmp_path / "chat.json", {"messages": [
        {"type": "message", "date_unixtime": "1615629600", "from": "Bob Stone", "text": "hi"},
        {"type": "service", "date_unixtime": "1615629660", "actor": "Bob Stone", "action": "pin_message", "text": ""},
    ]})
    code, out, _ = cli(capsys, "parse", str(path))
    first, second = (json.loads(line) for line in out.splitlines())
    assert code == 0 and first["platform"] == "telegram" and first["sender"] == "Bob Stone"
    assert (second["kind"], second["sender"], second["actor"]) == ("system", None, "Bob Stone")


def test_lone_surrogate_escapes_become_replacement_characters(tmp_path, capsys):
    path = tmp_path / "result.json"
    path.write_text(json.dumps(telegram(tg_message(text="ok \ud800 ok"))), encoding="utf-8")
    code, out, _ = cli(capsys, "parse", str(path))
    assert code == 0 and json.loads(out)["text"] == "ok \ufffd ok"


# ---- Messenger fields --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw_timestamp", "fragment"),
    [("Infinity", "not a finite number"), ("NaN", "not a finite number"), ("1e300", "calendar"),
     ("9" * 40, "calendar"), ('"soon"', "expected a number"), ("[1]", "expected a number")],
)
def test_messenger_bad_timestamp_is_one_line(tmp_path, capsys, raw_timestamp, fragment):
    text = json.dumps(messenger(fb_message(), fb_message(timestamp_ms=123)))
    path = tmp_path / "message_1.json"
    path.write_text(text.replace('"timestamp_ms": 123', f'"timestamp_ms": {raw_timestamp}'), encoding="utf-8")
    code, _, err = cli(capsys, "parse", str(path))
    assert code == 2
    one_error_line(err, "message_1.json", "message 2", "'timestamp_ms'", fragment)


def test_messenger_numeric_names_are_text_and_other_types_one_line(tmp_path, capsys):
    path = write_json(tmp_path / "message_1.json", messenger(fb_message(sender_name=42), participants=[{"name": 7}]))
    code, out, _ = cli(capsys, "parse", str(path))
    assert code == 0 and json.loads(out)["sender"] == "42"
    for bad in ({"sender_name": ["Carla"]}, {"content": {"text": "x"}}, {"sender_name": True}):
        write_json(path, messenger(fb_message(**bad)))
        code, _, err = cli(capsys, "parse", str(path))
        assert code == 2
        one_error_line(err, "message_1.json", f"'{next(iter(bad))}'")
    write_json(path, messenger(fb_message(), participants=[{"name": ["x"]}], title=None))
    code, _, err = cli(capsys, "parse", str(path))
    one_error_line(err, "'name'")


def test_messenger_auto_line_patterns_take_linear_time(tmp_path):
    """A message of 'sent' + 200,000 spaces once took hours (backtracking between two runs of spaces)."""
    path = write_json(tmp_path / "message_1.json", messenger(
        fb_message(content="Carla Neri sent" + " " * 200_000 + "x"),
        fb_message(timestamp_ms=1615028500000, content="sent a" + " " * 200_000 + "photo" + " " * 200_000 + "x"),
    ))
    result = run("parse", str(path), cwd=tmp_path, timeout=60)
    assert result.returncode == 0, result.stderr
    assert [json.loads(line)["kind"] for line in result.stdout.splitlines()] == ["text", "text"]


def test_messenger_part_without_participants_and_system_line_actor(tmp_path, capsys):
    path = write_json(tmp_path / "message_1.json", {"messages": [
        fb_message(content="Carla Neri called you.", call_duration=10, type="Call"),
        fb_message(timestamp_ms=1615028300000, content="ciao"),
    ]})
    code, out, _ = cli(capsys, "parse", str(path))
    first, second = (json.loads(line) for line in out.splitlines())
    assert code == 0 and first["text"] == "ciao" and first["platform"] == "messenger"
    assert (second["kind"], second["sender"], second["actor"]) == ("system", None, "Carla Neri")


def test_whatsapp_attachment_patterns_take_linear_time(tmp_path):
    """A 400 KB line of words before an unclosed '<attached' once took hours (every start position rescanned)."""
    words = "x " * 200_000
    path = tmp_path / "WhatsApp Chat with Anna.txt"
    path.write_text(
        f"01/03/2021, 21:00 - Anna Verdi: {words}<attached\n"
        f"01/03/2021, 21:01 - Anna Verdi: <attached: {words}\n"
        "01/03/2021, 21:02 - Anna Verdi: PHOTO-0001.jpg <attached>\n",
        encoding="utf-8",
    )
    result = run("parse", str(path), cwd=tmp_path, timeout=60)
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [row["kind"] for row in rows] == ["text", "text", "media"]
    assert rows[2]["media"] == "image"


def test_signal_header_with_an_impossible_date_is_one_line(tmp_path, capsys):
    chat = tmp_path / "signal-chats" / "Anna Verdi"
    chat.mkdir(parents=True)
    (chat / "chat.md").write_text("[2023-02-11 09:12:40] Me: ciao  \n[2023-13-11 09:13:02] Anna Verdi: hi  \n",
                                  encoding="utf-8")
    code, out, err = cli(capsys, "parse", str(chat / "chat.md"))
    assert code == 2 and out == ""
    line = one_error_line(err, "chat.md:2:", "impossible date")
    assert "Anna" not in line
