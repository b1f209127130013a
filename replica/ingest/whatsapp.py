"""Parse WhatsApp text exports (Android and iOS, any locale) into `Message`s in one regex pass.

Format handling:
- The header family (iOS `[date, time] `, Android `date, time - `, legacy `date time: `, spaced
  `13. 6. 2018. 21:25 `) is chosen once per file from a sample of lines; then one `finditer` over the whole
  text finds every header. Text between two headers is the first message's continuation (its "\\n"s kept).
  Text before the first header is ignored.
- Every localized string (media placeholders, deleted/edited markers, attachment words, notices, clock words)
  comes from the per-language data files in `replica/ingest/locales/`, merged and compiled once at import.
- Day/month order is chosen once per file from every distinct header date (see `_decide_date_order`).
- System lines get `sender=None`: Android lines without a sender, known notices in a sender's slot, and iOS
  lines that start with U+200E under a name that never writes anything else (the chat's own notice slot).
- Media keep their caption as text (a poll keeps its question); deleted messages get `text=""`.
"""

from __future__ import annotations

import re
from datetime import datetime
from functools import cache
from operator import itemgetter

from replica.errors import ReplicaInputError
from replica.ingest.message import Message
from replica.ingest.whatsapp_locales import load_tables
from replica.settings import DATE_ORDERS, require

HOW_TO_EXPORT = 'export it from WhatsApp with "Chat > More > Export chat > Without media"'

_MARKS = "\u200e\u200f\u202a\u202b\u202c\u202d\u202e"
_STRIP_MARKS = str.maketrans("", "", _MARKS)
_SPACES = " \u00a0\u202f"

# ---- localized strings (replica/ingest/locales/*.toml, every language merged) -------------------------------
_LOCALE = load_tables()


def _alternation(words: tuple[str, ...]) -> str:
    return "|".join(re.escape(word) for word in words)


def _clock_key(word: str) -> str:
    """'p. m.' / 'P.M.' / 'pm' -> 'pm': the form AM/PM words are compared in."""
    return re.sub(r"[\s.\u00a0\u202f]", "", word).lower()


_AM_KEYS = frozenset(_clock_key(word) for word in _LOCALE.words("am"))
_PM_KEYS = frozenset(_clock_key(word) for word in _LOCALE.words("pm"))
_CLOCK_KEYS = _AM_KEYS | _PM_KEYS | {_clock_key(word) for word in _LOCALE.words("time_suffix")}

# ---- header families -------------------------------------------------------------------------------------
_M = f"[{_MARKS}]*"
_S = f"[{_SPACES}]"
_CLOCK_INITIALS = "".join(sorted({c for key in _CLOCK_KEYS for c in (key[0].lower(), key[0].upper())}))
_CLOCK_WORD = f"(?=[{re.escape(_CLOCK_INITIALS)}])(?i:" + "|".join(
    rf"\.?{_S}?".join(re.escape(char) for char in key) + r"\.?"
    for key in sorted(_CLOCK_KEYS, key=len, reverse=True)
) + ")"
_DATE = rf"(?P<date>\d{{1,4}}[/.\-]{_S}?\d{{1,2}}[/.\-]{_S}?\d{{1,4}})\.?"
_SPACED_DATE = rf"(?P<date>\d{{1,4}}\.{_S}\d{{1,2}}\.{_S}\d{{1,4}})\.?"  # '13. 6. 2018.'
_TIME = (
    rf"(?:(?P<ampm0>{_CLOCK_WORD}){_S}?{_M})?"  # Korean/Japanese/Chinese put it first: '오후 9:43'
    r"(?P<hour>\d{1,2})[:.](?P<minute>\d{2})(?:[:.](?P<second>\d{2}))?\.?"
    rf"(?:{_M}{_S}?{_M}(?P<ampm>{_CLOCK_WORD}))?"
)
_AT = rf"(?:(?:{_alternation(_LOCALE.words('time_prefix'))}){_S}{_M})?"  # '12.3.2021 klo 21.04'


def _date_time(date: str) -> str:
    return rf"{date}{_M}(?:[,\u060c]{_M}{_S}?|{_S}){_M}{_AT}{_TIME}{_M}"


_REST = r"(?P<rest>.*)"
HEADER_FAMILIES: dict[str, str] = {
    "ios": rf"{_M}\[{_M}{_date_time(_DATE)}\]{_S}?{_REST}",
    "android": rf"{_M}{_date_time(_DATE)}{_S}?[-\u2013]{_M}{_S}{_REST}",
    "legacy": rf"{_M}{_date_time(_DATE)}:{_S}{_REST}",
    "spaced": rf"{_M}{_date_time(_SPACED_DATE)}{_S}{_REST}",  # '13. 6. 2018. 21:25:15 Name: text'
}


@cache
def _header_rx(family: str, marks: bool = True) -> re.Pattern:
    """The header regex of one family, compiled on first use (start-up stays short): `finditer` over a whole text,
    `match` on one line. Without `marks` it skips the direction-mark slots: the same matches in a text holding none,
    found faster."""
    pattern = HEADER_FAMILIES[family] if marks else HEADER_FAMILIES[family].replace(_M, "")
    return re.compile("^" + pattern, re.MULTILINE)


_DATE_GROUP = itemgetter("date")
_DATE_PARTS_RX = re.compile(r"(\d+)\D+(\d+)\D+(\d+)")
_SAMPLE_LINES = 50
_DETECT_LINES = 400  # lines read to decide whether a text file is an export
_MIN_HEADER_SHARE = 0.1  # of those (non-empty) lines, at least this share must be message headers

# ---- message bodies ----------------------------------------------------------------------------------------
MEDIA_PLACEHOLDERS = _LOCALE.media_omitted  # whole first line, lowercased, marks and a final "." removed
_FINAL_DOTS = ".。"  # a deleted notice may end in either
DELETED = frozenset(phrase.lower().rstrip(_FINAL_DOTS) for phrase in _LOCALE.words("deleted"))
_WHOLE_LINE_KEYS = DELETED | MEDIA_PLACEHOLDERS.keys()  # a first line equal to one is a placeholder, not text
_MAYBE_MARKUP_ENDS = " >)"  # '… <This message was edited>', 'IMG-1.jpg (file attached)', a padded line
# File name -> media type: extension first, then the WhatsApp file-name tag.
EXTENSION_MEDIA: dict[str, str] = {
    **dict.fromkeys(("jpg", "jpeg", "png", "heic", "bmp"), "image"),
    **dict.fromkeys(("mp4", "mov", "3gp", "mkv", "avi"), "video"),
    **dict.fromkeys(("opus", "ogg", "m4a", "mp3", "aac", "amr", "wav"), "audio"),
    "webp": "sticker", "gif": "gif", "vcf": "contact",
    **dict.fromkeys(("pdf", "doc", "docx", "xls", "xlsx", "ppt", "pptx", "txt", "zip", "odt", "csv"), "document"),
}
FILE_TAG_MEDIA: dict[str, str] = {
    "IMG": "image", "PHOTO": "image", "VID": "video", "VIDEO": "video", "PTT": "audio", "AUD": "audio",
    "AUDIO": "audio", "STK": "sticker", "STICKER": "sticker", "GIF": "gif", "DOC": "document",
    "CONTACT": "contact",
}

_FILE_ATTACHED_RX = re.compile(
    rf"(?P<file>.+?){_S}\((?:{_alternation(_LOCALE.words('file_attached'))})\)", re.IGNORECASE)
_ATTACHED_WORDS = _alternation(_LOCALE.words("attached"))
# '<attached: 00000012-PHOTO.jpg>' anywhere in the message (spaces and marks inside the brackets allowed),
# or the 2017 iOS form 'FILE.jpg <attached>' at the end of a line. The file name is tried only from the start of a
# line or after a bracket (where the leftmost match would begin anyway): linear time on any line.
_ATTACHED_RX = re.compile(
    rf"<{_S}?{_M}(?:{_ATTACHED_WORDS}):{_S}?{_M}(?P<file>[^<>\n]+?){_S}?{_M}>"
    rf"|(?<![^<>\n])[^\S\n]*(?P<old>[^\s<>][^<>\n]*?){_S}<{_M}(?:{_ATTACHED_WORDS})>",
    re.IGNORECASE,
)
# What iOS writes before a document's '<attached: …>': 'Invoice.pdf • 2 pages' (no caption of the user's).
_DOCUMENT_LABEL_RX = re.compile(rf"[^\n]+\.\w{{1,5}}(?:{_S}•{_S}[^\n]*)?")
_LOCATION_RX = re.compile(rf"(?:{_alternation(_LOCALE.words('location'))}):{_S}?https?://\S+\s*$", re.IGNORECASE)
_POLL_RX = re.compile(rf"(?:{_alternation(_LOCALE.words('poll'))}):\s*$")
_POLL_OPTION_RX = re.compile(rf"\n(?:{_alternation(_LOCALE.words('poll_option'))}):.*", re.IGNORECASE)
_EDITED_RX = re.compile(rf"[\s{_MARKS}]*<(?:{_alternation(_LOCALE.words('edited'))})>$", re.IGNORECASE)
_SYSTEM_RX = re.compile(_alternation(_LOCALE.words("system_phrases")), re.IGNORECASE)
_STRICT_SYSTEM_RX = re.compile(_alternation(_LOCALE.words("system_notices")), re.IGNORECASE)
_NOTICE_PREFIXES = frozenset(notice[:4].lower() for notice in _LOCALE.words("system_notices"))  # cheap pre-check
_ACTOR_NOTICE_RX = re.compile(rf"{_S}(?:{_alternation(_LOCALE.words('actor_notices'))})\b", re.IGNORECASE)
_FILE_TAG_RX = re.compile(r"(?:^|-)([A-Z]{3,7})-")


def looks_like_whatsapp(text: str) -> bool:
    """True if the text reads as an export: it opens with a message header and headers fill its first lines."""
    return why_not_whatsapp(text) is None


def why_not_whatsapp(text: str) -> str | None:
    """None for a WhatsApp export, else why not (a source file or log that quotes a few chat lines, prose...)."""
    lines = [line for line in _first_lines(text.lstrip("\ufeff"), _DETECT_LINES) if line.strip()]
    if not lines:
        return "the file is empty"
    family = next((name for name in HEADER_FAMILIES if _header_rx(name).match(lines[0])), None)
    if family is None:
        return "its first line is not a WhatsApp message header"
    rx = _header_rx(family)
    headers = sum(1 for line in lines if rx.match(line))
    if headers < _MIN_HEADER_SHARE * len(lines):
        return (f"only {headers} of its first {len(lines)} lines are WhatsApp message headers "
                f"(a file quoting a few chat lines?)")
    return None


def parse_whatsapp(text: str, *, source: str, chat: str, date_order: str = "auto") -> list[Message]:
    """Parse decoded export text (BOM/CRLF may still be present). date_order: 'auto' | 'dmy' | 'mdy' | 'ymd'."""
    require("data.date_order", date_order, path=source)
    text = text.lstrip("\ufeff")
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    family = _detect_family(text)
    if family is None:
        raise ReplicaInputError(f"no message header found: this does not look like a WhatsApp chat export; "
                                f"{HOW_TO_EXPORT}", path=source)
    marks = any(mark in text for mark in _MARKS)
    matches = list(_header_rx(family, marks).finditer(text))
    dates = _parse_dates(text, matches, date_order, source)
    return _build_messages(text, matches, dates, ios=family == "ios", chat=chat, source=source)


def _first_lines(text: str, count: int = _SAMPLE_LINES * 4) -> list[str]:
    """The first `count` (>= 1) lines, without splitting (or copying) the rest of the text."""
    end = -1
    for _ in range(count):
        end = text.find("\n", end + 1)
        if end < 0:
            return text.split("\n")
    return text[:end].split("\n")


def _detect_family(text: str) -> str | None:
    """Header family with the most matches among the first non-empty lines; else the first found anywhere."""
    sample = [line for line in _first_lines(text) if line.strip()][:_SAMPLE_LINES]
    counts = {name: sum(1 for line in sample if _header_rx(name).match(line)) for name in HEADER_FAMILIES}
    best = max(counts, key=counts.__getitem__)
    if counts[best]:
        return best
    found = [(m.start(), name) for name in HEADER_FAMILIES if (m := _header_rx(name).search(text))]
    return min(found)[1] if found else None


def _parse_dates(text: str, matches: list[re.Match], date_order: str, source: str) -> dict[str, tuple]:
    """Map every distinct header date string to (year, month, day) under one order chosen for the file."""
    parts: dict[str, tuple[str, str, str]] = {}
    sequence: list[str] = []  # header dates in file order, repeats collapsed
    previous = None
    for raw in map(_DATE_GROUP, matches):
        if raw != previous:
            sequence.append(raw)
            previous = raw
            if raw not in parts:
                parts[raw] = _DATE_PARTS_RX.match(raw).groups()
    order = date_order if date_order != "auto" else _decide_date_order(parts, sequence, matches)
    dates = {}
    for raw, (a, b, c) in parts.items():
        ymd = _ymd(a, b, c, order)
        if ymd is None:
            line = _line_of(text, matches, raw)
            if any(_ymd(a, b, c, other) for other in DATE_ORDERS[1:]):
                why = (f"date {raw} is impossible in the {order} day/month order used for this file; "
                       f"check that the file is one export, or set date_order to the order your phone uses")
            else:
                why = (f"date {raw} is impossible in every day/month order; "
                       f"fix the line or re-export the chat ({HOW_TO_EXPORT})")
            raise ReplicaInputError(why, path=source, line=line)
        dates[raw] = ymd
    return dates


def _decide_date_order(parts: dict[str, tuple[str, str, str]], sequence: list[str],
                       matches: list[re.Match]) -> str:
    """ymd if years lead; else the order under which every date exists and the file goes back in time least
    often; a tie is broken by the clock (US 'AM'/'PM' -> mdy), then day first."""
    if parts and all(len(a) == 4 for a, _, _ in parts.values()):
        return "ymd"
    valid = {order: sum(1 for fields in parts.values() if _ymd(*fields, order)) for order in ("dmy", "mdy")}
    most = max(valid.values())
    candidates = [order for order in ("dmy", "mdy") if valid[order] == most]
    if len(candidates) > 1:
        jumps = {order: _backward_jumps(parts, sequence, order) for order in candidates}
        fewest = min(jumps.values())
        candidates = [order for order in candidates if jumps[order] == fewest]
    if len(candidates) > 1:
        for m in matches[:_SAMPLE_LINES]:
            ampm = m.group("ampm")
            if ampm:
                return "mdy" if ampm in ("AM", "PM") else "dmy"
    return candidates[0]


def _backward_jumps(parts: dict[str, tuple[str, str, str]], sequence: list[str], order: str) -> int:
    """How many times the header dates, read in `order`, go back in time from one header to the next."""
    days = [day for raw in sequence if (day := _ymd(*parts[raw], order))]
    return sum(1 for before, after in zip(days, days[1:]) if after < before)


def _ymd(a: str, b: str, c: str, order: str) -> tuple[int, int, int] | None:
    """(year, month, day) from the three date fields read in `order`, or None if no such date exists."""
    if order == "ymd":
        y, mo, d = a, b, c
    elif order == "mdy":
        mo, d, y = a, b, c
    else:
        d, mo, y = a, b, c
    year = int(y) + 2000 if len(y) == 2 else int(y)
    try:
        datetime(year, int(mo), int(d))
    except ValueError:
        return None
    return year, int(mo), int(d)


def _line_of(text: str, matches: list[re.Match], raw_date: str) -> int:
    """1-based line number of the first header carrying `raw_date`."""
    first = next(m for m in matches if m.group("date") == raw_date)
    return text.count("\n", 0, first.start()) + 1


def _hour_24(hour: int, word: str, cache: dict[str, int | None] = {}) -> int:  # noqa: B006 - per-process cache
    """The 24h hour for a clock word in any language ('PM', 'p. m.', 'م', '午後', '오후'; 'ч.' changes nothing)."""
    shift = cache.get(word, -1)
    if shift == -1:
        key = _clock_key(word)
        shift = cache[word] = 12 if key in _PM_KEYS else 0 if key in _AM_KEYS else None
    return hour if shift is None else hour % 12 + shift


def _header_time(stamp: tuple, dates: dict[str, tuple], text: str, m: re.Match, source: str) -> datetime:
    """The time of a header's (date, clock word before, hour, minute, second, clock word after) fields."""
    raw_date, ampm0, raw_hour, minute, second, ampm = stamp
    hour = int(raw_hour)
    clock = ampm or ampm0
    if clock:
        hour = _hour_24(hour, clock)
    try:
        return datetime(*dates[raw_date], hour, int(minute), int(second) if second else 0)
    except ValueError:
        raise ReplicaInputError(f"impossible time {raw_hour}:{minute} in a message header; fix the line or "
                                f"re-export the chat ({HOW_TO_EXPORT})",
                                path=source, line=text.count("\n", 0, m.start()) + 1) from None


def _build_messages(text: str, matches: list[re.Match], dates: dict[str, tuple], *, ios: bool,
                    chat: str, source: str) -> list[Message]:
    """One Message per header; the text up to the next header is its body. Hot path: one time object per distinct
    header stamp, and a one-line body that can only be text (`_plain_line`) skips `_classify`."""
    senders: dict[str, tuple[str | None, bool]] = {}
    times: dict[tuple, datetime] = {}
    messages = []
    append = messages.append
    marked: list[tuple[int, str]] = []  # iOS: (index, raw sender) of unknown texts that start with U+200E
    plain_senders: set[str] = set()  # iOS: raw senders with at least one message without that lead
    ends = [m.start() - 1 for m in matches[1:]] + [len(text)]
    for m, end in zip(matches, ends):
        fields = m.groups()
        stamp = fields[:6]
        time = times.get(stamp)
        if time is None:
            time = times[stamp] = _header_time(stamp, dates, text, m, source)
        rest = fields[6]
        body_end = m.end()
        one_line = end <= body_end
        body = rest if one_line else rest + text[body_end:end]

        sender = None
        split = rest.find(": ")
        if split < 0 and rest.endswith(":"):
            split = len(rest) - 1
        if split >= 0:
            raw_sender = rest[:split]
            known = senders.get(raw_sender)
            if known is None:
                known = senders[raw_sender] = _clean_sender(raw_sender)
            sender, is_notice = known
            if not is_notice:
                body = body[split + 2:]
        if sender is None:
            append(Message(time, None, _strip_marks(body), "system", "whatsapp", chat))
            continue
        if one_line and _plain_line(body, sender, ios):
            message = Message(time, sender, body, "text", "whatsapp", chat)
        else:
            message = _classify(time, sender, body.rstrip("\n"), ios, chat)
        if ios and message.kind == "text":
            if body[:1] == "\u200e":
                marked.append((len(messages), raw_sender))
            else:
                plain_senders.add(raw_sender)
        append(message)
    for index, raw_sender in marked:  # a name that only ever "writes" U+200E-led lines is the chat's notice slot
        if raw_sender not in plain_senders:
            message = messages[index]
            message.sender, message.kind, message.text = None, "system", _strip_marks(message.text)
    return messages


def _plain_line(line: str, sender: str, ios: bool) -> bool:
    """True only if `_classify` would keep this one-line body as text; checks that cost less than it does."""
    if not line or line[0] in _MARKS or line[-1] in _MAYBE_MARKUP_ENDS or "<" in line or ":" in line[:30]:
        return False
    if len(line) < 50 and line.lower().rstrip(_FINAL_DOTS) in _WHOLE_LINE_KEYS:
        return False
    if line[:4].lower() in _NOTICE_PREFIXES:
        return False
    return not (ios and _is_actor_notice(line, sender))


def _clean_sender(raw: str) -> tuple[str | None, bool]:
    """(sender, is_notice): drop direction marks and the iOS '~ ' non-contact prefix; spot quoted notices."""
    if _SYSTEM_RX.search(raw) and any(q in raw for q in "\"“”«»'’"):
        return None, True
    name = raw.translate(_STRIP_MARKS).strip(_SPACES)
    if name.startswith("~"):
        name = name[1:].lstrip(_SPACES)
    return name, False


def _strip_marks(value: str) -> str:
    return value.translate(_STRIP_MARKS).strip()


def _classify(time: datetime, sender: str, body: str, ios: bool, chat: str) -> Message:
    """Message of the right kind for a sender's body: edited marker, media, deleted, notice or text."""
    edited = False
    if body.endswith(">") and (marker := _EDITED_RX.search(body)):
        body = body[: marker.start()]
        edited = True
    first, _, more = body.partition("\n")
    head = first.lstrip(_MARKS).rstrip() if first[:1] in _MARKS or first[-1:] == " " else first
    if len(head) < 50:
        key = head.lower().rstrip(_FINAL_DOTS)
        media = MEDIA_PLACEHOLDERS.get(key)
        if media:
            return Message(time, sender, more.strip(), "media", "whatsapp", chat, edited, media=media)
        if key in DELETED:
            return Message(time, sender, "", "deleted", "whatsapp", chat, edited)
    if "<" in body or head[-1:] == ")" or ":" in head[:30]:
        media, caption = _match_media(head, more, body)
        if media:
            return Message(time, sender, caption, "media", "whatsapp", chat, edited, media=media)
    if (head[:4].lower() in _NOTICE_PREFIXES and _STRICT_SYSTEM_RX.match(head)) or (
            ios and _is_actor_notice(head, sender)):
        return Message(time, None, _strip_marks(body), "system", "whatsapp", chat, edited)
    return Message(time, sender, body, "text", "whatsapp", chat, edited)


def _is_actor_notice(head: str, sender: str) -> bool:
    """iOS '~ Ana: ~ Ana created this group': the text repeats the sender's name, then a notice."""
    name = head.lstrip("~" + _SPACES)
    return name.startswith(sender) and bool(_ACTOR_NOTICE_RX.match(name, len(sender)))


def _match_media(head: str, more: str, body: str) -> tuple[str | None, str]:
    """(media type, caption) for attachment/location/poll messages, else (None, '')."""
    if "<" in body and (m := _ATTACHED_RX.search(body)):
        name = m.group("file") or m.group("old")
        before, after = body[: m.start()].strip(_MARKS + " \n"), body[m.end():]
        if before and _DOCUMENT_LABEL_RX.fullmatch(before.translate(_STRIP_MARKS)):
            before = ""  # iOS writes the document's name and page count there, not the user
        return _file_media(name), _join(_strip_marks(before), after)
    if head[-1:] == ")" and (m := _FILE_ATTACHED_RX.fullmatch(head)):
        return _file_media(m.group("file")), more.strip()
    if ":" in head[:30]:
        if _LOCATION_RX.match(head):
            return "location", more.strip()
        if _POLL_RX.match(head):
            return "poll", _POLL_OPTION_RX.sub("", "\n" + more).strip()
    return None, ""


def _file_media(name: str) -> str:
    name = name.translate(_STRIP_MARKS).strip()
    extension = name.rpartition(".")[2].lower()
    if extension in EXTENSION_MEDIA:
        return EXTENSION_MEDIA[extension]
    tag = _FILE_TAG_RX.search(name)
    return FILE_TAG_MEDIA.get(tag.group(1), "other") if tag else "other"


def _join(before: str, after: str) -> str:
    return "\n".join(part for part in (before.strip(), after.strip()) if part)
