"""The feedback store on its own (`replica/feedback/store.py`): masking, counts, deletion, file modes, entry kinds."""

from __future__ import annotations

import json
import sqlite3
import stat
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from replica.feedback.store import NO_LABEL, FeedbackStore
from tests.conftest import LABELLED_DATA

PHONE, EMAIL = "+1 415 555 0132", "sam.rivera@example.org"
QUESTION = [{"role": "them", "text": "you coming?"}]


@pytest.fixture(scope="module")
def run_config() -> dict:
    """A run's resolved config on the English sample (Sam Rivera; contacts Mum, Jake Miller, Priya Shah)."""
    from replica.config import compose

    return OmegaConf.to_container(compose("train", LABELLED_DATA, output_dir="out"), resolve=True)


def store_in(folder: Path, config: dict | None = None) -> FeedbackStore:
    return FeedbackStore.of_run(folder, config or {})


def rows(folder: Path) -> list[tuple]:
    """The stored rows as SQLite holds them, read without the store."""
    with sqlite3.connect(folder / "feedback" / "feedback.sqlite") as db:
        return db.execute("SELECT relationship, grp, context, reply, correction, good FROM feedback ORDER BY id").fetchall()


def test_every_text_is_masked_before_it_is_written(tmp_path, run_config):
    store = store_in(tmp_path, run_config)
    context = [{"role": "them", "text": f"Jake Miller says ring him on {PHONE}"}, {"role": "me", "text": "ok"}]
    store.add(context, f"mail me at {EMAIL}", correction=f"ask Priya, or call {PHONE}", relationship="friend")
    ((label, group, stored_context, reply, correction, good),) = rows(tmp_path)
    assert (label, group, good) == ("friend", 0, 0)
    raw = f"{stored_context} {reply} {correction}"
    for private in ("Jake", "Miller", "Priya", "415", "0132", "sam.rivera", "example.org"):
        assert private not in raw
    turns = json.loads(stored_context)
    assert [turn["role"] for turn in turns] == ["them", "me"] and turns[1]["text"] == "ok"
    assert turns[0]["text"].endswith(" says ring him on <PHONE_1>") and reply == "mail me at <EMAIL_1>"
    assert correction.startswith("ask <NAME_") and correction.endswith(", or call <PHONE_1>")
    files = b"".join(path.read_bytes() for path in (tmp_path / "feedback").iterdir())
    assert b"0132" not in files and b"Priya" not in files  # nor in the WAL or the journal


def test_an_entry_is_either_a_correction_or_good(tmp_path):
    store = store_in(tmp_path)
    store.add(QUESTION, "yes", correction="yes, at 8")
    store.add(QUESTION, "on my way")
    fixed, good = store.entries()
    assert (fixed.good, fixed.correction, good.good, good.correction) == (False, "yes, at 8", True, None)
    assert [row[4:] for row in rows(tmp_path)] == [("yes, at 8", 0), (None, 1)]
    with sqlite3.connect(store.path) as db, pytest.raises(sqlite3.IntegrityError):  # the table itself refuses both
        db.execute("INSERT INTO feedback (created, relationship, grp, context, reply, correction, good) "
                   "VALUES (0, NULL, 0, '[]', 'x', 'y', 1)")


def test_counts_per_label_with_unlabelled_entries_under_none(tmp_path):
    store = store_in(tmp_path)
    assert store.counts() == {}
    for correction, label in (("a", "family"), (None, "family"), ("b", "friend"), ("c", "friend"), (None, None)):
        store.add(QUESTION, "x", correction=correction, relationship=label)
    assert store.counts() == {NO_LABEL: {"corrections": 0, "good": 1}, "family": {"corrections": 1, "good": 1},
                              "friend": {"corrections": 2, "good": 0}}


def test_delete_by_id_by_label_and_everything(tmp_path):
    store = store_in(tmp_path)
    ids = [store.add(QUESTION, str(n), relationship=label) for n, label in enumerate(["family", "friend", None, "friend", None])]
    assert store.delete([ids[0], 999]) == 1  # an unknown id deletes nothing
    assert store.delete(relationship="friend") == 2
    assert store.delete(relationship=NO_LABEL) == 2
    assert store.entries() == []
    store.add(QUESTION, "again")
    assert store.delete(everything=True) == 1 and store.entries() == []


def test_the_store_is_private_and_reading_an_empty_one_creates_nothing(tmp_path):
    store = store_in(tmp_path)
    assert store.entries() == [] and store.counts() == {} and store.delete(everything=True) == 0
    assert not (tmp_path / "feedback").exists()
    store.add(QUESTION, "yes")
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.path.parent.stat().st_mode) == 0o700
