"""Options of `replica parse/prepare/merge` and of chat/serve's `--device`, each through the real CLI where a broken
option would show: different dates, different examples, a refusal."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import assert_one_line_error, train_tiny

ROOT = Path(__file__).resolve().parents[1]
TAGS = ("<image>", "<audio>", "<video>", "<sticker>", "<gif>", "<media>")


def replica(*args: str, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "replica.cli", *map(str, args)], cwd=cwd, env=env, capture_output=True,
                          text=True, encoding="utf-8", timeout=timeout)


@pytest.mark.parametrize("order, expected", [("dmy", ["2021-04-03T10:00:00", "2021-04-05T10:00:00"]),
                                             ("mdy", ["2021-03-04T10:00:00", "2021-05-04T10:00:00"])])
def test_parse_date_order_decides_day_and_month(tmp_path, order, expected):
    export = tmp_path / "WhatsApp Chat with Luca.txt"
    export.write_text("03/04/2021, 10:00 - Luca: a\n05/04/2021, 10:00 - Luca: b\n", encoding="utf-8")
    done = replica("parse", export, "--date-order", order, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert [json.loads(line)["time"] for line in done.stdout.splitlines()] == expected


@pytest.mark.parametrize("zone, expected", [("Europe/Rome", "2021-03-06T12:00:00"), ("America/New_York", "2021-03-06T06:00:00")])
def test_parse_timezone_places_epoch_times(tmp_path, zone, expected):
    export = tmp_path / "message_1.json"
    export.write_text(json.dumps({
        "participants": [{"name": "Carla Neri"}, {"name": "Marco Bianchi"}], "title": "Carla Neri",
        "messages": [{"sender_name": "Carla Neri", "timestamp_ms": 1615028400000, "content": "ci vediamo?", "type": "Generic"}],
    }), encoding="utf-8")  # 2021-03-06 11:00 UTC
    done = replica("parse", export, "--timezone", zone, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["time"] == expected


@pytest.mark.parametrize("command, flag, value", [
    ("parse", "--timezone", "Mars/Olympus"), ("parse", "--max-messages", "0"), ("serve", "--port", "70000"),
    ("chat", "--top-p", "1.5"), ("export", "--quant", "q3_x"), ("merge", "--dtype", "int3"),
    ("chat", "--temperature", "inf"), ("serve", "--temperature", "nan"), ("serve", "--max-tokens", "0"),
    ("chat", "--device", "tpu"),
])
def test_a_bad_flag_is_one_line_naming_it(tmp_path, command, flag, value):
    done = replica(command, tmp_path, flag, value, cwd=tmp_path)
    assert_one_line_error(done, f"replica {command}: error:", flag, value, f"replica {command} --help")


def _prepared_texts(tmp_path: Path, *overrides: str) -> tuple[str, dict]:
    """(every example file's text, stats.json) of `replica prepare` with these overrides."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    out = tmp_path / "datasets"
    done = replica("prepare", *overrides, f"data.datasets_dir={out}", f"paths.data_dir={tmp_path}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    [dataset] = out.iterdir()
    texts = "".join((dataset / f"{split}.jsonl").read_text(encoding="utf-8") for split in ("train", "val", "test"))
    return texts, json.loads((dataset / "stats.json").read_text())


def test_prepare_media_drop_removes_media_messages(tmp_path):
    tagged, tagged_stats = _prepared_texts(tmp_path / "tag", "data=sample")
    dropped, dropped_stats = _prepared_texts(tmp_path / "drop", "data=sample", "data.media=drop")
    assert sum(tagged.count(tag) for tag in TAGS) > 50  # the sample holds photos, voice notes, stickers...
    assert not [tag for tag in TAGS if tag in dropped]
    assert dropped_stats["messages"]["kept"] < tagged_stats["messages"]["kept"]


def test_prepare_languages_keeps_only_chats_in_those_languages(tmp_path):
    english_only, stats = _prepared_texts(tmp_path / "en", "data=english", "data.languages=[en]")
    assert stats["examples"]["total"] > 0 and set(stats["languages"]) == {"en"}
    refused = replica("prepare", "data=english", "data.languages=[it]", f"data.datasets_dir={tmp_path / 'it'}",
                      f"paths.data_dir={tmp_path}", cwd=tmp_path)
    assert_one_line_error(refused, "replica: error:", "data.languages=['it']", "['en']")


def test_merge_public_needs_push_to_hub(tmp_path):
    done = replica("merge", tmp_path, "--out", tmp_path / "merged", "--public", cwd=tmp_path)
    assert_one_line_error(done, "replica: error:", "--public", "--push-to-hub")


@pytest.mark.slow
def test_device_flag_of_chat_and_serve(tmp_path):
    """`--device cpu` answers; `--device cuda` on a machine without a visible GPU is one line naming the flag."""
    import torch

    _, run_dir = train_tiny(tmp_path, ["trainer.max_steps=2", "validate_before_training=false"])
    on_cpu = replica("chat", run_dir, "--device", "cpu", "--once", "ciao", "--seed", "1", "--max-new-tokens", "4", cwd=tmp_path)
    assert on_cpu.returncode == 0 and on_cpu.stdout.strip(), on_cpu.stderr[-2000:]
    if torch.cuda.is_available():
        return
    for command in (["chat", run_dir, "--once", "ciao"], ["serve", run_dir]):
        assert_one_line_error(replica(*command, "--device", "cuda", cwd=tmp_path), "replica: error:", "--device cuda")
        assert_one_line_error(replica(*command, "--device", "cuda:1", cwd=tmp_path), "replica: error:", "--device cuda:1")
        assert_one_line_error(replica(*command, "--device", "tpu", cwd=tmp_path), f"replica {command[0]}: error:",
                              "'tpu' is not a device: use auto, cpu, cuda or cuda:N")
