"""Overlapping exports of one chat (two dates, two phones, Android and iOS): keep every message once.

A *part* is one chat as read from one file. Two parts of different files are the same chat when, in the time
span both cover, at least half of the smaller part's messages match the other's: same platform, same minute,
same sender (compared as `normalize_name` does) and same kind and text (direction marks and spacing ignored).
Coincidences between different chats (one forwarded greeting in two groups) never reach that share, so
different chats are never merged. Within one chat group the part with the most messages is read first; a
message of a later part is dropped when the parts read before already hold as many copies of it, so a
message legitimately repeated inside one file is kept as often as that file has it. Parts merged into a group
take the chat name of the largest part, so one conversation is not split into two chats.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from replica.ingest import LoadResult
from replica.ingest.message import Message
from replica.prepare.identity import normalize_name

MIN_SHARED_SHARE = 0.5  # share of the smaller part's messages (in the common span) that must match
_MARKS = re.compile("[\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")

Key = tuple[datetime, str, str, str]
PartId = tuple[str, str, str]  # (source file, platform, chat)


@dataclass(slots=True)
class Overlaps:
    """What `drop_overlaps` removed, for stats: no file or chat names, files are numbered as they were read."""

    dropped: int = 0
    merged_chats: int = 0  # chats read from more than one file
    files: list[dict] = field(default_factory=list)  # {"file": n, "platform", "first", "last", "dropped"}

    def to_json(self) -> dict:
        return {"dropped": self.dropped, "merged_chats": self.merged_chats, "files": self.files}


def drop_overlaps(loaded: LoadResult) -> tuple[list[Message], Overlaps]:
    """The loaded messages with every copy that another export of the same chat already holds removed."""
    messages = loaded.messages
    parts: dict[PartId, list[int]] = defaultdict(list)
    for index, message in enumerate(messages):
        parts[(message.source, message.platform, message.chat)].append(index)
    keys = _keys(messages)
    groups = _same_chat_groups(parts, keys)
    keep = [True] * len(messages)
    rename: dict[PartId, str] = {}
    overlaps = Overlaps()
    dropped_per_file: Counter[str] = Counter()
    for group in groups:
        if len(group) < 2:
            continue
        overlaps.merged_chats += 1
        order = sorted(group, key=lambda part: (-len(parts[part]), min(parts[part])))
        held: Counter[Key] = Counter()
        for part in order:
            copies: Counter[Key] = Counter()
            for index in parts[part]:
                copies[keys[index]] += 1
                if copies[keys[index]] <= held[keys[index]]:
                    keep[index] = False
                    overlaps.dropped += 1
                    dropped_per_file[part[0]] += 1
            for key, count in copies.items():
                held[key] = max(held[key], count)
            if part[2] != order[0][2]:
                rename[part] = order[0][2]
    kept = [
        replace(message, chat=rename[part]) if (part := (message.source, message.platform, message.chat)) in rename
        else message
        for message, keep_it in zip(messages, keep)
        if keep_it
    ]
    overlaps.files = _file_rows(dropped_per_file, messages, loaded.files)
    return kept, overlaps


def _keys(messages: Sequence[Message]) -> list[Key]:
    """What makes two copies of a message the same message: minute, sender, kind, text."""
    names: dict[str | None, str] = {None: ""}
    keys = []
    for message in messages:
        if message.sender not in names:
            names[message.sender] = normalize_name(message.sender)
        text = " ".join(_MARKS.sub("", message.text).split())
        keys.append((message.time.replace(second=0, microsecond=0), names[message.sender], message.kind, text))
    return keys


def _file_rows(dropped: Counter[str], messages: Sequence[Message], files: Sequence[str]) -> list[dict]:
    """One row per file that lost duplicates: its number in reading order, platform and date span."""
    number = {name: index for index, name in enumerate(files, start=1)}
    spans: dict[str, list] = {}
    for message in messages:
        if message.source in dropped:
            span = spans.setdefault(message.source, [message.platform, message.time, message.time])
            span[1], span[2] = min(span[1], message.time), max(span[2], message.time)
    return [
        {
            "file": number.get(name, 0),
            "platform": spans[name][0],
            "first": spans[name][1].date().isoformat(),
            "last": spans[name][2].date().isoformat(),
            "dropped": dropped[name],
        }
        for name in sorted(dropped, key=lambda name: number.get(name, 0))
    ]


def _same_chat_groups(parts: dict[PartId, list[int]], keys: list[Key]) -> list[list[PartId]]:
    """Connected groups of parts that are the same chat (see the module docstring)."""
    counts = {part: Counter(keys[index] for index in indices) for part, indices in parts.items()}
    holders: dict[Key, list[PartId]] = defaultdict(list)
    for part, counter in counts.items():
        for key in counter:
            holders[key].append(part)
    shared: Counter[tuple[PartId, PartId]] = Counter()
    for key, owners in holders.items():
        for first in range(len(owners)):
            for second in range(first + 1, len(owners)):
                a, b = owners[first], owners[second]
                if a[0] != b[0] and a[1] == b[1]:
                    shared[(a, b)] += min(counts[a][key], counts[b][key])
    parent = {part: part for part in parts}

    def root(part: PartId) -> PartId:
        while parent[part] != part:
            parent[part] = parent[parent[part]]
            part = parent[part]
        return part

    times = {part: sorted(keys[index][0] for index in indices) for part, indices in parts.items()}
    for (a, b), matched in shared.items():
        if matched >= MIN_SHARED_SHARE * _smaller_in_common_span(times[a], times[b]):
            parent[root(a)] = root(b)
    groups: dict[PartId, list[PartId]] = defaultdict(list)
    for part in parts:
        groups[root(part)].append(part)
    return list(groups.values())


def _smaller_in_common_span(a: list[datetime], b: list[datetime]) -> int:
    """Messages of the smaller part inside the minutes both parts cover (at least 1); times sorted."""
    start, end = max(a[0], b[0]), min(a[-1], b[-1])
    inside = [bisect_right(times, end) - bisect_left(times, start) for times in (a, b)]
    return max(1, min(inside))
