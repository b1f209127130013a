"""Read export files and folders (zip archives included) within the input limits, tell each file's format by its
content, and collect every chat's messages (one parser module per format)."""

from __future__ import annotations

import gc
import json
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import tzinfo
from functools import partial
from operator import attrgetter
from pathlib import Path, PurePosixPath

from replica.errors import ReplicaInputError
from replica.ingest.fields import local_zone
from replica.ingest.file_names import whatsapp_chat_name
from replica.ingest.limits import Budget, LimitError, Limits
from replica.ingest.message import Message
from replica.ingest.signal import looks_like_signal, parse_signal
from replica.ingest.sources import decode_text, is_zip, iter_files, reason_of
from replica.ingest.whatsapp import (
    looks_like_whatsapp,
    parse_whatsapp,
    why_not_whatsapp,
)
from replica.privacy import display_path

SUPPORTED = (
    "a WhatsApp .txt export, a Telegram result.json, a Messenger/Instagram message_N.json, a Signal chat.md "
    "(signal-export) or a Discord .json (DiscordChatExporter)"
)

_MAX_SKIPS_LISTED = 5


@dataclass(frozen=True, slots=True)
class Reading:
    """How exports are read: WhatsApp's day/month order and the zone of epoch times (None: the machine's)."""

    date_order: str
    zone: tzinfo | None


@dataclass
class LoadResult:
    messages: list[Message] = field(default_factory=list)  # all messages, oldest first (stable sort by time)
    owners: set[str] = field(default_factory=set)  # owner names the exports declare (Telegram personal_information)
    files: list[str] = field(default_factory=list)  # display names of files that were parsed
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (display name, reason), folder/zip runs only


def load_exports(
    paths: Sequence[str | Path],
    *,
    date_order: str = "auto",
    limits: Limits | None = None,
    timezone: str | None = None,
) -> LoadResult:
    """Parse every export under `paths`; explicit bad files raise, bad files inside folders/zips are skipped.

    The run reads at most `limits` (default: conf/data/default.yaml) uncompressed bytes and messages in total.
    Epoch times (Telegram's date_unixtime, Messenger) are read in `timezone` (data.timezone; see `fields.local_zone`).
    """
    with _collector_paused():
        result = _read_all(paths, Reading(date_order, local_zone(timezone)), Budget(limits or Limits.defaults()))
    if not result.messages:
        raise ReplicaInputError(_nothing_found(paths, result))
    result.messages.sort(key=attrgetter("time"))
    return result


def _read_all(paths: Sequence[str | Path], reading: Reading, budget: Budget) -> LoadResult:
    """Every message of every export under `paths`, unsorted (Messenger threads merged once all parts are read)."""
    result = LoadResult()
    threads: dict[str, list[tuple[str, dict, bool]]] = {}
    for given in paths:
        path = Path(given)
        if not path.exists():
            raise ReplicaInputError("no such file or folder; check the path in `exports`", path=str(path))
        explicit = path.is_file() and not is_zip(path)
        for name, data in iter_files(path, result.skipped, budget):
            before = len(result.messages)
            try:
                part = _load_one(name, data, reading, result, budget)
            except LimitError:
                raise
            except ReplicaInputError as err:
                if explicit:
                    raise
                result.skipped.append((name, reason_of(err)))
                continue
            if part is not None:
                threads.setdefault(_thread_key(name, part), []).append((name, part, explicit))
                budget.add_messages(len(part["messages"]), name)
            else:
                budget.add_messages(len(result.messages) - before, name)
    for parts in threads.values():
        _load_thread(parts, result, reading.zone)
    return result


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector: parsing builds no reference cycles, and the collector would only rescan
    the growing list of messages (about a fifth of the parse time)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _load_one(name: str, data: bytes, reading: Reading, result: LoadResult, budget: Budget) -> dict | None:
    """Parse one file into `result`; a Messenger part is returned instead, to be merged with its thread."""
    if not data or data.isspace():
        raise ReplicaInputError("empty file; export the chat again", path=name)
    text = decode_text(data)
    if text is None:
        raise ReplicaInputError(f"binary file, not a chat export; pass {SUPPORTED}", path=name)
    head = text.lstrip()[:200].lower()
    if head.startswith("{"):
        # the JSON parsers are imported for JSON files only (`replica parse` of a .txt starts faster)
        from replica.ingest.discord import looks_like_discord, parse_discord
        from replica.ingest.messenger import looks_like_messenger
        from replica.ingest.telegram import looks_like_telegram, parse_telegram

        budget.check_json_size(text, name)
        obj = _json(text, name)
        if looks_like_telegram(obj):
            _add(result, name, *parse_telegram(obj, source=name, zone=reading.zone))
        elif looks_like_messenger(obj):
            return obj
        elif looks_like_discord(obj):
            _add(result, name, *parse_discord(obj, source=name))
        else:
            raise ReplicaInputError(f"JSON of an unknown layout; pass {SUPPORTED}", path=name)
    elif looks_like_signal(text, name):
        _add(result, name, *budget.parse_text(text, name, partial(parse_signal, source=name), lambda r: len(r[0])))
    elif looks_like_whatsapp(text):
        parse = partial(parse_whatsapp, source=name, chat=whatsapp_chat_name(name), date_order=reading.date_order)
        _add(result, name, budget.parse_text(text, name, parse, len))
    elif head.startswith(("<!doctype html", "<html")):
        raise ReplicaInputError(
            "HTML export; export the chat again in JSON format (Telegram: 'Machine-readable JSON')", path=name
        )
    else:
        raise ReplicaInputError(f"not a recognised chat export ({why_not_whatsapp(text)}); pass {SUPPORTED}",
                                path=name)
    return None


def _add(result: LoadResult, name: str, messages: list[Message], owners: Iterable[str] = ()) -> None:
    """Record one parsed file: its messages (tagged with the file, for overlap detection), owners and name."""
    for message in messages:
        message.source = name
    result.messages.extend(messages)
    result.owners.update(owners)
    result.files.append(name)


def _load_thread(parts: list[tuple[str, dict, bool]], result: LoadResult, zone: tzinfo | None) -> None:
    """Merge one Messenger thread's parts; a broken thread found in a folder/zip is skipped."""
    from replica.ingest.messenger import parse_messenger

    names = [name for name, _, _ in parts]
    try:
        messages = parse_messenger([part for _, part, _ in parts], source=names[0], zone=zone)
    except ReplicaInputError as err:
        if any(explicit for _, _, explicit in parts):
            raise
        result.skipped.extend((name, reason_of(err)) for name in names)
        return
    _add(result, names[0], messages)
    result.files.extend(names[1:])


def _json(text: str, name: str) -> object:
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise ReplicaInputError(
            f"invalid JSON at column {err.colno} ({err.msg}); the file looks truncated or edited, export it again",
            path=name,
            line=err.lineno,
        ) from None
    except RecursionError:
        raise ReplicaInputError(
            "JSON nested too deeply to read (no chat export nests like this); export it again", path=name
        ) from None
    except ValueError:  # a number with more digits than Python converts (4300)
        raise ReplicaInputError(
            "JSON holds a number too long to read (no chat export writes one); export it again", path=name
        ) from None


def _thread_key(name: str, part: dict) -> str:
    """Parts of one thread share `thread_path`, or else their folder."""
    if isinstance(part.get("thread_path"), str) and part["thread_path"]:
        return "thread:" + part["thread_path"]
    container, _, member = name.rpartition("!")
    folder = str(PurePosixPath(member.replace("\\", "/")).parent)
    return f"folder:{container}!{folder}"


def _nothing_found(paths: Sequence[str | Path], result: LoadResult) -> str:
    where = ", ".join(display_path(str(path)) for path in paths) or "(no paths given)"
    if not result.skipped:
        return f"no chat messages found in {where}; pass {SUPPORTED}"
    listed = "; ".join(f"{display_path(name)} ({reason})" for name, reason in result.skipped[:_MAX_SKIPS_LISTED])
    more = len(result.skipped) - _MAX_SKIPS_LISTED
    return f"no chat messages found in {where}; skipped: {listed}" + (f"; and {more} more" if more > 0 else "")
