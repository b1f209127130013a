"""The whole prepare step: config validation, dataset building in memory, and prepare_dataset end to end."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from replica.errors import ReplicaInputError
from replica.ingest import LoadResult
from replica.ingest.message import Message
from replica.prepare.config import parse_data_config
from replica.prepare.pipeline import build_dataset, prepare_dataset, private_values

ROOT = Path(__file__).resolve().parents[1]
PRIVATE = ["Luca Ferri", "Luca", "Giulia", "333 123 4567", "luca@example.com"]


def data_cfg(tmp_path: Path, **overrides) -> dict:
    """conf/data/default.yaml resolved the way Hydra would, with `overrides` applied."""
    root = OmegaConf.create({
        "paths": {"data_dir": str(tmp_path / "data")},
        "seed": 0,
        "data": OmegaConf.load(ROOT / "conf/data/default.yaml"),
    })
    root.data.merge_with(overrides)
    return root.data


def conversation(chat: str, contact: str, days: int) -> list[Message]:
    """`days` sessions (one per day) of an Italian chat between the user and `contact`."""
    lines = [
        (contact, "ciao Marco, stasera vieni alla festa da Giulia? chiamami al 333 123 4567"),
        ("Marco Bianchi", "sì certo, a che ora ci vediamo? scrivimi a luca@example.com se cambia qualcosa"),
        (contact, "verso le nove, porta qualcosa da bere per favore"),
        ("Marco Bianchi", "perfetto, allora passo prima dal supermercato"),
    ]
    start = datetime(2024, 3, 1, 20, 0)
    return [
        Message(start + timedelta(days=day, minutes=15 * i), sender, text, "text", "whatsapp", chat)
        for day in range(days) for i, (sender, text) in enumerate(lines)
    ]


def test_config_validation_lists_every_problem_in_one_line(tmp_path):
    bad = data_cfg(tmp_path, exports=[], context_min=6, context_max=5, split=[0.8, 0.1, 0.2], media="blur",
                   session_gap=0, phone_region="XX", mask={"phone": True})
    with pytest.raises(ReplicaInputError) as error:
        parse_data_config(bad)
    message = str(error.value)
    assert "\n" not in message
    for problem in [
        "data.exports is empty: pass data.exports=[path/to/export, ...]",
        "data.context_min=6 is above data.context_max=5",
        "data.split=[0.8, 0.1, 0.2] sums to 1.1, must sum to 1",
        "data.media='blur' must be one of tag|drop",
        "data.session_gap=0 must be a number of hours > 0",
        "data.phone_region='XX'",
        "data.mask.phone is not a valid key",
    ]:
        assert problem in message


def test_missing_keys_are_named_once(tmp_path):
    with pytest.raises(ReplicaInputError, match=r"^invalid config: missing data.me, data.datasets_dir"):
        parse_data_config({"exports": ["x"]})


def test_prepare_dataset_validates_before_reading_anything(tmp_path):
    with pytest.raises(ReplicaInputError, match="data.exports is empty"):
        prepare_dataset(data_cfg(tmp_path, me=["Marco"]))
    assert not (tmp_path / "data").exists()


def test_build_dataset_in_memory_masks_splits_and_counts(tmp_path):
    messages = conversation("Luca Ferri", "Luca Ferri", 8) + conversation("Calcetto", "Giulia Neri", 4)
    dataset = build_dataset(LoadResult(messages=messages, files=["a", "b"]),
                            parse_data_config(data_cfg(tmp_path, exports=["x"], me=["marco bianchi"])))
    rows = [row for name in ("train", "val", "test") for row in dataset.splits[name]]
    assert all(dataset.splits[name] for name in ("train", "val", "test"))
    assert len(rows) == 12 * 2
    assert {row["chat"] for row in rows} == {"<NAME_1>", "Calcetto"}  # Luca Ferri writes most: contact 1, <NAME_1>
    dumped = json.dumps(dataset.splits, ensure_ascii=False) + json.dumps(dataset.stats, ensure_ascii=False)
    for value in PRIVATE:
        assert value not in dumped
    assert "<PHONE_1>" in dumped and "<EMAIL_1>" in dumped and "Marco" in dumped  # the user's name stays
    stats = dataset.stats
    assert stats["messages_per_sender"] == {"me": 24, "contact_1": 16, "contact_2": 8}
    assert stats["me_share"] == 0.5 and stats["languages"] == {"it": {"chats": 2, "examples": 24}}
    assert stats["sessions"] == 12 and stats["files"] == 2


def test_language_filter_that_keeps_nothing_explains_itself(tmp_path):
    cfg = parse_data_config(data_cfg(tmp_path, exports=["x"], me=["Marco Bianchi"], languages=["en"]))
    with pytest.raises(ReplicaInputError, match=r"no training examples.*chat languages found: \['it'\]"):
        build_dataset(LoadResult(messages=conversation("Luca", "Luca", 3)), cfg)


WHATSAPP_EXPORT = "".join(
    f"{day:02d}/03/2024, 20:{minute:02d} - {sender}: {text}\n"
    for day in range(1, 11)
    for minute, sender, text in [
        (0, "Luca Ferri", "ciao Marco, stasera vieni alla festa da Giulia? chiamami al +39 333 123 4567"),
        (1, "Marco Bianchi", "sì certo, a che ora ci vediamo stasera?"),
        (20, "Luca Ferri", "verso le nove, porta qualcosa da bere per favore"),
        (21, "Marco Bianchi", "perfetto, allora passo prima dal supermercato"),
        (22, "Marco Bianchi", "<Media omessi>"),
    ]
)


# Needs the WhatsApp parser (replica.ingest.load_exports): this is the real end-to-end path.
def test_prepare_dataset_end_to_end_on_a_whatsapp_export(tmp_path):
    export = tmp_path / "exports" / "WhatsApp Chat with Luca Ferri.txt"
    export.parent.mkdir()
    export.write_text(WHATSAPP_EXPORT, encoding="utf-8")
    logged: list[str] = []
    cfg = data_cfg(tmp_path, exports=[str(export.parent)], me=["marco bianchi"])
    out = prepare_dataset(cfg, log=logged.append).dir
    stats = json.loads((out / "stats.json").read_text("utf-8"))

    assert out.parent == tmp_path / "data" / "datasets"
    assert sorted(path.name for path in out.iterdir()) == [
        "manifest.json", "stats.json", "test.jsonl", "train.jsonl", "val.jsonl"]
    rows = {name: [json.loads(line) for line in (out / f"{name}.jsonl").read_text("utf-8").splitlines()]
            for name in ("train", "val", "test")}
    assert all(rows.values()) and sum(map(len, rows.values())) == 20  # two user turns a day, ten days
    sessions = {name: {row["session"] for row in split} for name, split in rows.items()}
    assert not (sessions["train"] & sessions["val"] or sessions["train"] & sessions["test"]
                or sessions["val"] & sessions["test"])
    row = rows["train"][0]
    assert set(row) == {"context", "target", "session", "time", "language", "chat", "relationship", "group"}
    assert (row["relationship"], row["group"]) == ("other", False)  # a 1:1 chat data.relationships does not list
    assert row["chat"] == "<NAME_1>" and row["session"].startswith("<NAME_1>#") and row["language"] == "it"
    assert row["context"][-1]["role"] == "them" and "<PHONE_1>" in row["context"][-1]["text"]
    targets = {row["target"] for split in rows.values() for row in split}
    assert targets == {"sì certo, a che ora ci vediamo stasera?",
                       "perfetto, allora passo prima dal supermercato\n<media>"}
    written = "".join(path.read_text("utf-8") for path in out.iterdir()) + "\n".join(logged)
    for value in ["Luca", "333 123 4567"]:
        assert value not in written
    assert "Giulia" in written  # not a sender of these exports: only senders' names are known to be names
    assert stats["files"] == 1 and stats["examples"]["total"] == 20 and stats["messages"]["loaded"] == 50
    assert {"+39 333 123 4567", "luca", "ferri"} <= private_values(cfg).values()
