"""The feedback store: `<run>/feedback/feedback.sqlite`, its one reader and writer.

An entry is what the replica was asked (the context turns, to whom), what it replied, and either what its owner
would have said instead (a correction) or that the reply was right (good). Every text is masked like training data
before it is written (`PiiMasker` with the run's own `data` settings). Each write is one SQLite transaction in WAL
mode with full sync: a process killed mid-write leaves the store as it was before that entry, or with it whole.
The folder is private (0700, the file 0600) and nothing in it is exported, merged or logged.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from replica.errors import ReplicaInputError
from replica.prepare.pii import PiiMasker
from replica.settings import MaskSection

FEEDBACK_DIR = "feedback"
FEEDBACK_FILE = "feedback.sqlite"
NO_LABEL = "(none)"  # how counts name entries whose request named no relationship
SCHEMA = """
CREATE TABLE IF NOT EXISTS feedback (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created REAL NOT NULL,
    relationship TEXT,
    grp INTEGER NOT NULL,
    context TEXT NOT NULL,
    reply TEXT NOT NULL,
    correction TEXT,
    good INTEGER NOT NULL,
    CHECK ((correction IS NULL) = (good = 1))
)
"""


@dataclass(frozen=True)
class Entry:
    """One stored piece of feedback, every text already masked."""

    id: int
    created: float
    relationship: str | None
    group: bool
    context: list[dict[str, str]]  # {"role": "me" | "them", "text"} turns, oldest first
    reply: str  # what the replica said
    correction: str | None  # what its owner would have said instead; None when the reply was marked good

    @property
    def good(self) -> bool:
        return self.correction is None


def masker_of_run(folder: str | Path, config: Mapping[str, Any]) -> PiiMasker:
    """A masker as the run's dataset was masked: its `data.me`, `data.phone_region` and `data.mask`, and the contact
    names and phone regions of its exports (read again, in memory only; none when the exports are gone, or for a
    merged folder, which records no training config)."""
    from replica.prepare.pipeline import masking_inputs
    from replica.prepare.store import RUN_RECORD, read_run_record

    recorded = (Path(folder) / RUN_RECORD).is_file()  # its data section names the exports by absolute path
    data = dict(read_run_record(folder)["data"] if recorded else config.get("data") or {})
    me = data.get("me") or []
    try:
        contacts, regions = masking_inputs(data) if data else ([], [])
    except ReplicaInputError:  # the exports changed into something unreadable: mask what needs no names
        contacts, regions = [], []
    return PiiMasker(
        contacts,
        own_names=[me] if isinstance(me, str) else list(me),
        region=str(data.get("phone_region") or "US"),
        regions=regions,
        options=MaskSection(**(data.get("mask") or {})),
    )


class FeedbackStore:
    """The feedback of one run (or merged) folder."""

    def __init__(self, folder: str | Path, masker: Callable[[], PiiMasker]) -> None:
        self.path = Path(folder) / FEEDBACK_DIR / FEEDBACK_FILE
        self._make_masker = masker
        self._masker: PiiMasker | None = None

    @classmethod
    def of_run(cls, folder: str | Path, config: Mapping[str, Any]) -> FeedbackStore:
        """The store of a run (or merged) folder; its masker is built from `config` on the first write."""
        return cls(folder, lambda: masker_of_run(folder, config))

    def add(self, context: Sequence[Mapping[str, str]], reply: str, *, correction: str | None = None,
            relationship: str | None = None, group: bool = False) -> int:
        """Store one correction (or, with no correction, a reply marked good); its id."""
        turns = [{"role": str(turn["role"]), "text": self._mask(turn["text"])} for turn in context]
        row = (time.time(), relationship, int(group), json.dumps(turns, ensure_ascii=False), self._mask(reply),
               None if correction is None else self._mask(correction), int(correction is None))
        with self._connection(create=True) as db:
            cursor = db.execute("INSERT INTO feedback (created, relationship, grp, context, reply, correction, good) "
                                "VALUES (?, ?, ?, ?, ?, ?, ?)", row)
            return int(cursor.lastrowid)

    def entries(self) -> list[Entry]:
        """Every entry, oldest first (none when nothing was stored yet)."""
        if not self.path.exists():
            return []
        with self._connection() as db:
            rows = db.execute("SELECT id, created, relationship, grp, context, reply, correction FROM feedback "
                              "ORDER BY id").fetchall()
        return [Entry(id_, created, label, bool(grp), json.loads(context), reply, correction)
                for id_, created, label, grp, context, reply, correction in rows]

    def counts(self) -> dict[str, dict[str, int]]:
        """Per relationship label: how many corrections and how many replies marked good."""
        tally: dict[str, Counter[str]] = {}
        for entry in self.entries():
            tally.setdefault(entry.relationship or NO_LABEL, Counter())["good" if entry.good else "corrections"] += 1
        return {label: {"corrections": c["corrections"], "good": c["good"]} for label, c in sorted(tally.items())}

    def delete(self, ids: Sequence[int] = (), *, relationship: str | None = None, everything: bool = False) -> int:
        """Remove the entries with these ids, or every entry of one label, or all; how many went."""
        if not self.path.exists():
            return 0
        with self._connection() as db:
            if everything:
                cursor = db.execute("DELETE FROM feedback")
            elif relationship is not None:
                label = None if relationship == NO_LABEL else relationship
                cursor = db.execute("DELETE FROM feedback WHERE relationship IS ?", (label,))
            else:
                cursor = db.executemany("DELETE FROM feedback WHERE id = ?", [(int(i),) for i in ids])
            return cursor.rowcount

    def _mask(self, text: str) -> str:
        if self._masker is None:
            self._masker = self._make_masker()
        return self._masker.mask(str(text))

    @contextmanager
    def _connection(self, *, create: bool = False) -> Iterator[sqlite3.Connection]:
        if create:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fresh = not self.path.exists()
        try:
            connection = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        except sqlite3.Error as err:
            raise ReplicaInputError(f"cannot open the feedback store ({err})", path=str(self.path)) from None
        with closing(connection) as db:
            if fresh:
                os.chmod(self.path, 0o600)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute(SCHEMA)
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
