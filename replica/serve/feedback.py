"""`POST /v1/feedback`'s body and its writer: the owner marks a reply good, or says what they would have written.

The conversation is read as chat completions read it (`Conversation`: the same messages, roles and turns). Entries go
to the served folder's `FeedbackStore` (masked, one SQLite transaction each) from one thread of their own, one at a
time, so the event loop never waits on the disk or on building the masker. Nothing of an entry is logged or sent back.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Annotated

from pydantic import AfterValidator

from replica.errors import ReplicaInputError
from replica.feedback.store import FeedbackStore
from replica.serve.openai_api import Conversation, Text

log = logging.getLogger(__name__)


def _said(text: str) -> str:
    """Text someone said: not empty or only blanks."""
    if not text.strip():
        raise ValueError("must not be empty")
    return text


Said = Annotated[Text, AfterValidator(_said)]


class FeedbackRequest(Conversation):
    """What the replica replied to `messages` and either the owner's `correction` or `good: true`; `group` says the
    conversation is a group chat (default: whether the label is `group`, as for generation)."""

    reply: Said
    correction: Said | None = None
    good: bool | None = None

    def problem(self) -> tuple[str, str] | None:
        """(field, message) when the body gives neither a correction nor `good: true`, or both."""
        if self.correction is not None and self.good:
            return "good", "good: a reply marked good takes no correction; send one or the other"
        if self.correction is None and not self.good:
            return "correction", "correction: send the correction, or good: true for a reply that was right"
        return None


class FeedbackNotStored(Exception):
    """The store could not take an entry (the message names the error's type, never the entry)."""


class FeedbackWriter:
    """Adds entries to one `FeedbackStore` from a single thread of its own, in the order they arrive."""

    def __init__(self, store: FeedbackStore) -> None:
        self.store = store
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="replica-feedback")

    async def add(self, turns: list[dict], reply: str, correction: str | None, relationship: str | None, group: bool) -> int:
        """Store one entry (committed when this returns); its id."""
        write = partial(self._write, turns, reply, correction, relationship, group)
        return await asyncio.get_running_loop().run_in_executor(self._thread, write)

    def _write(self, turns: list[dict], reply: str, correction: str | None, relationship: str | None, group: bool) -> int:
        try:
            return self.store.add(turns, reply, correction=correction, relationship=relationship, group=group)
        except (sqlite3.Error, OSError, ReplicaInputError) as err:
            log.error("feedback not stored (%s)", type(err).__name__)
            raise FeedbackNotStored(f"the feedback could not be stored ({type(err).__name__})") from None
