"""How much one run may read: uncompressed input bytes and messages, counted as they stream in.

The defaults are the `max_input_mib` and `max_messages` keys of `conf/data/default.yaml` (read without Hydra, so
that `replica parse` stays light).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TypeVar

from replica.errors import ReplicaInputError

DATA_DEFAULTS = Path(__file__).resolve().parents[2] / "conf" / "data" / "default.yaml"
MIB = 1024 * 1024
# Objects + lists a JSON export may spend per message before it is refused unread (Telegram and Messenger spend 1-6);
# this bounds the memory a small file of `[],[],[],...` could take once parsed.
JSON_CONTAINERS_PER_MESSAGE = 8
Parsed = TypeVar("Parsed")
LIMIT_KEYS = ("max_input_mib", "max_messages")
_PLAIN_LIMIT = re.compile(rf"^({'|'.join(LIMIT_KEYS)}):[ \t]*(\d+)[ \t]*(?:#.*)?$", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class Limits:
    max_input_mib: int  # uncompressed bytes read from all files, folders and zip members of one run
    max_messages: int  # messages parsed in one run

    @classmethod
    def defaults(cls) -> Limits:
        return cls(**_default_values())


@cache
def _default_values() -> dict[str, int]:
    """The two keys as the shipped file writes them (`key: 123  # …`, read without importing a YAML parser: every
    `replica` command builds its parser with them); any other form of the file goes through the YAML parser."""
    text = DATA_DEFAULTS.read_text(encoding="utf-8")
    found = dict(_PLAIN_LIMIT.findall(text))
    if found.keys() == set(LIMIT_KEYS):
        return {key: int(found[key]) for key in LIMIT_KEYS}
    import yaml

    data = yaml.safe_load(text)
    return {key: int(data[key]) for key in LIMIT_KEYS}


class LimitError(ReplicaInputError):
    """A run-wide limit was passed: the whole run stops (it is never a skipped file)."""


class Budget:
    """The running totals of one run against its Limits; passing a limit raises a one-line error naming the file."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.bytes = 0
        self.messages = 0

    @property
    def bytes_left(self) -> int:
        return self.limits.max_input_mib * MIB - self.bytes

    def add_bytes(self, count: int, name: str) -> None:
        self.check_room(count, name)
        self.bytes += count

    def check_room(self, count: int, name: str) -> None:
        """Raise if `count` more bytes would pass the limit."""
        if count > self.bytes_left:
            raise LimitError(
                f"the exports hold more than {self.limits.max_input_mib} MiB (uncompressed) in total; pass only the "
                "chats you need, or raise data.max_input_mib (replica parse/senders: --max-input-mib)",
                path=name,
            )

    def check_json_size(self, text: str, name: str) -> None:
        """Refuse, before parsing, JSON holding more objects and lists than the message limit can need."""
        containers = text.count("{") + text.count("[")
        if containers > JSON_CONTAINERS_PER_MESSAGE * self.limits.max_messages:
            raise LimitError(
                f"JSON holds {containers:,} objects and lists, more than {self.limits.max_messages:,} messages can "
                "need; pass only the chats you need, or raise data.max_messages (replica parse/senders: "
                "--max-messages)",
                path=name,
            )

    def parse_text(self, text: str, name: str, parse: Callable[[str], Parsed], count: Callable[[Parsed], int]) -> Parsed:
        """`parse(text)`; when the text has more lines than messages may still come, its first lines alone are parsed
        first, so that a huge file passes the message limit with memory bounded by the limit, not by the file."""
        room = self.limits.max_messages - self.messages
        if text.count("\n") > room:
            end = -1
            for _ in range(room + 1):
                end = text.find("\n", end + 1)
            try:
                head = count(parse(text[: end + 1]))
            except ReplicaInputError:
                head = 0  # the cut made the head unreadable: the whole file decides
            if head > room:
                self.add_messages(head, name)
        return parse(text)

    def add_messages(self, count: int, name: str) -> None:
        self.messages += count
        if self.messages > self.limits.max_messages:
            raise LimitError(
                f"the exports hold more than {self.limits.max_messages:,} messages in total; pass only the chats "
                "you need, or raise data.max_messages (replica parse/senders: --max-messages)",
                path=name,
            )
