"""Parse WhatsApp text exports (Android and iOS, any locale) into `Message`s in one regex pass.

Format handling:
- The header family (iOS `[date, time] `, Android `date, time - `, legacy `date time: `) is chosen once per
  file from a sample of lines; then one `finditer` over the whole text finds every header. Text between two
  headers is the first message's continuation (its "\\n"s kept). Text before the first header is ignored.
- Day/month order is chosen once per file from every distinct header date (see `_decide_date_order`).
- System lines get `sender=None`, on Android (no sender) and iOS (where WhatsApp puts the chat name or the
  actor in the sender slot and starts the text with U+200E) alike.
- Media keep their caption as text (a poll keeps its question); deleted messages get `text=""`.
"""

from __future__ import annotations

import re
from datetime import datetime

from replica.errors import ReplicaInputError
from replica.ingest.message import Message

DATE_ORDERS = ("auto", "dmy", "mdy", "ymd")
HOW_TO_EXPORT = 'export it from WhatsApp with "Chat > More > Export chat > Without media"'

_MARKS = "\u200e\u200f\u202a\u202b\u202c\u202d\u202e"
_STRIP_MARKS = str.maketrans("", "", _MARKS)
_SPACES = " \u00a0\u202f"

# ---- header families -------------------------------------------------------------------------------------
_M = f"[{_MARKS}]*"
_S = f"[{_SPACES}]"
_DATE = r"(?P<date>\d{1,4}[/.\-]\d{1,2}[/.\-]\d{2,4})\.?"
_TIME = (
    r"(?P<hour>\d{1,2})[:.](?P<minute>\d{2})(?:[:.](?P<second>\d{2}))?"
    rf"(?:{_S}?(?P<ampm>[AaPp]\.?{_S}?[Mm]\.?))?"
)
_AT = rf"(?:(?:klo|kl\.){_S})?"  # Finnish "12.3.2021 klo 21.04", Danish/Norwegian "kl. 21.04"
_DATE_TIME = rf"{_DATE}{_M}(?:,{_S}?|{_S}){_AT}{_M}{_TIME}{_M}"
_REST = r"(?P<rest>.*)"
HEADER_FAMILIES: dict[str, str] = {
    "ios": rf"{_M}\[{_M}{_DATE_TIME}\]{_S}?{_REST}",
    "android": rf"{_M}{_DATE_TIME}{_S}?[-\u2013]{_S}{_REST}",
    "legacy": rf"{_M}{_DATE_TIME}:{_S}{_REST}",
}
_LINE_RX = {name: re.compile(pattern) for name, pattern in HEADER_FAMILIES.items()}
_TEXT_RX = {name: re.compile("^" + pattern, re.MULTILINE) for name, pattern in HEADER_FAMILIES.items()}
_DATE_PARTS_RX = re.compile(r"(\d+)\D(\d+)\D(\d+)")
_SAMPLE_LINES = 50

# ---- media placeholders: one line per locale/type -----------------------------------------------------
# Whole first line of the message (compared lowercased, direction marks and a final "." removed).
MEDIA_PLACEHOLDERS: dict[str, str] = {
    "<media omitted>": "other", "<media omessi>": "other", "<médias omis>": "other",
    "<multimedia omitido>": "other", "<medien ausgeschlossen>": "other", "<mídia oculta>": "other",
    "<arquivo de mídia oculto>": "other",
    "image omitted": "image", "video omitted": "video", "audio omitted": "audio", "sticker omitted": "sticker",
    "gif omitted": "gif", "document omitted": "document", "contact card omitted": "contact",
    "video note omitted": "video",
    "immagine omessa": "image", "video omesso": "video", "audio omesso": "audio", "sticker omesso": "sticker",
    "gif omessa": "gif", "documento omesso": "document", "scheda contatto omessa": "contact",
    "image absente": "image", "vidéo absente": "video", "audio omis": "audio", "sticker omis": "sticker",
    "gif retiré": "gif", "document omis": "document", "fiche contact omise": "contact",
    "imagen omitida": "image", "video omitido": "video", "audio omitido": "audio", "sticker omitido": "sticker",
    "gif omitido": "gif", "documento omitido": "document", "tarjeta de contacto omitida": "contact",
    "bild weggelassen": "image", "video weggelassen": "video", "audio weggelassen": "audio",
    "sticker weggelassen": "sticker", "gif weggelassen": "gif", "dokument weggelassen": "document",
    "kontaktkarte ausgelassen": "contact",
    "imagem ocultada": "image", "vídeo omitido": "video", "áudio ocultado": "audio",
    "figurinha omitida": "sticker", "documento ocultado": "document",
    "cartão de contato omitido": "contact",
    "live location shared": "location", "posizione in tempo reale condivisa": "location",
    "position en direct partagée": "location", "ubicación en tiempo real compartida": "location",
    "live-standort geteilt": "location", "localização em tempo real compartilhada": "location",
}
# Android "<file> (file attached)" suffixes.
FILE_ATTACHED = ("file attached", "file allegato", "fichier joint", "archivo adjunto", "Datei angehängt",
                 "arquivo anexado")
# iOS "<attached: file>" prefixes.
ATTACHED = ("attached", "allegato", "pièce jointe", "adjunto", "Anhang", "anexo")
# "location: https://maps.google.com/?q=..." prefixes.
LOCATION = ("location", "posizione", "localisation", "ubicación", "Standort", "localização")
# Poll block: "POLL:\nQuestion\nOPTION: answer (n votes)".
POLL = ("POLL", "SONDAGGIO", "SONDAGE", "ENCUESTA", "UMFRAGE", "ENQUETE")
POLL_OPTION = ("OPTION", "OPZIONE", "OPCIÓN", "OPÇÃO")
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

# ---- deleted / edited ------------------------------------------------------------------------------------
DELETED = frozenset(phrase.lower() for phrase in (
    "This message was deleted", "You deleted this message",
    "Questo messaggio è stato eliminato", "Hai eliminato questo messaggio",
    "Ce message a été supprimé", "Vous avez supprimé ce message",
    "Se eliminó este mensaje", "Eliminaste este mensaje",
    "Diese Nachricht wurde gelöscht", "Du hast diese Nachricht gelöscht",
    "Mensagem apagada", "Esta mensagem foi apagada", "Você apagou esta mensagem", "Você apagou essa mensagem",
))
EDITED = ("This message was edited", "Questo messaggio è stato modificato", "Ce message a été modifié",
          "Se editó este mensaje.", "Diese Nachricht wurde bearbeitet", "Esta mensagem foi editada")

# ---- system notices ----------------------------------------------------------------------------------------
# Phrases that mark an Android sender-less notice whose quoted part contains ": " (e.g. a new subject).
SYSTEM_PHRASES = (
    "end-to-end", "created group", "created this group", "changed the subject", "changed the group name",
    "changed this group's", "changed the group description", "changed the group",
    "ha creato il gruppo", "hai creato il gruppo", "ha cambiato", "hai cambiato",
    "a créé le groupe", "avez créé le groupe", "a modifié", "avez modifié", "a changé", "avez changé",
    "creó el grupo", "creaste el grupo", "cambió", "cambiaste",
    "hat die gruppe", "hast die gruppe", "geändert",
    "criou o grupo", "criou este grupo", "mudou", "alterou",
)
# Notices that iOS may write without the U+200E lead; anchored at the start of the text.
STRICT_SYSTEM_PHRASES = (
    "Messages and calls are end-to-end encrypted", "Messages to this group are now secured",
    "Missed voice call", "Missed video call", "Your security code with",
    "I messaggi e le chiamate sono crittografati", "Chiamata vocale persa", "Videochiamata persa",
    "Il tuo codice di sicurezza",
    "Les messages et les appels sont chiffrés", "Appel vocal manqué", "Appel vidéo manqué",
    "Votre code de sécurité",
    "Los mensajes y las llamadas están cifrados", "Llamada perdida", "Llamada de voz perdida",
    "Videollamada perdida", "Tu código de seguridad",
    "Nachrichten und Anrufe sind Ende-zu-Ende-verschlüsselt", "Verpasster Sprachanruf",
    "Verpasster Videoanruf", "Deine Sicherheitsnummer",
    "As mensagens e as chamadas são protegidas", "As mensagens e ligações são protegidas",
    "Chamada de voz perdida", "Chamada de vídeo perdida", "Seu código de segurança",
)


def _alternation(words: tuple[str, ...]) -> str:
    return "|".join(re.escape(word) for word in words)


_FILE_ATTACHED_RX = re.compile(rf"(?P<file>.+?){_S}\((?:{_alternation(FILE_ATTACHED)})\)", re.IGNORECASE)
_ATTACHED_RX = re.compile(rf"<(?:{_alternation(ATTACHED)}):{_S}?(?P<file>[^>]+)>", re.IGNORECASE)
_LOCATION_RX = re.compile(rf"(?:{_alternation(LOCATION)}):{_S}?https?://\S+\s*$", re.IGNORECASE)
_POLL_RX = re.compile(rf"(?:{_alternation(POLL)}):\s*$")
_POLL_OPTION_RX = re.compile(rf"\n(?:{_alternation(POLL_OPTION)}):.*", re.IGNORECASE)
_EDITED_RX = re.compile(rf"[\s{_MARKS}]*<(?:{_alternation(EDITED)})>$", re.IGNORECASE)
_SYSTEM_RX = re.compile(_alternation(SYSTEM_PHRASES), re.IGNORECASE)
_STRICT_SYSTEM_RX = re.compile(_alternation(STRICT_SYSTEM_PHRASES), re.IGNORECASE)
_FILE_TAG_RX = re.compile(r"(?:^|-)([A-Z]{3,7})-")


def looks_like_whatsapp(text: str) -> bool:
    """True if the first ~20 non-empty lines contain at least one WhatsApp message header."""
    lines = [line for line in _first_lines(text.lstrip("\ufeff")) if line.strip()][:20]
    return any(rx.match(line) for line in lines for rx in _LINE_RX.values())


def parse_whatsapp(text: str, *, source: str, chat: str, date_order: str = "auto") -> list[Message]:
    """Parse decoded export text (BOM/CRLF may still be present). date_order: 'auto' | 'dmy' | 'mdy' | 'ymd'."""
    if date_order not in DATE_ORDERS:
        raise ReplicaInputError(f"date_order must be one of {', '.join(DATE_ORDERS)}, got {date_order!r}",
                                path=source)
    text = text.lstrip("\ufeff")
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    family = _detect_family(text)
    if family is None:
        raise ReplicaInputError(f"no message header found: this does not look like a WhatsApp chat export; "
                                f"{HOW_TO_EXPORT}", path=source)
    matches = list(_TEXT_RX[family].finditer(text))
    dates = _parse_dates(text, matches, date_order, source)
    return _build_messages(text, matches, dates, ios=family == "ios", chat=chat, source=source)


def _first_lines(text: str) -> list[str]:
    """The first few hundred lines, without splitting the whole text."""
    return text.split("\n", _SAMPLE_LINES * 4)[: _SAMPLE_LINES * 4]


def _detect_family(text: str) -> str | None:
    """Header family with the most matches among the first non-empty lines; else the first found anywhere."""
    sample = [line for line in _first_lines(text) if line.strip()][:_SAMPLE_LINES]
    counts = {name: sum(1 for line in sample if rx.match(line)) for name, rx in _LINE_RX.items()}
    best = max(counts, key=counts.__getitem__)
    if counts[best]:
        return best
    found = [(m.start(), name) for name, rx in _TEXT_RX.items() if (m := rx.search(text))]
    return min(found)[1] if found else None


def _parse_dates(text: str, matches: list[re.Match], date_order: str, source: str) -> dict[str, tuple]:
    """Map every distinct header date string to (year, month, day) under one order chosen for the file."""
    parts: dict[str, tuple[str, str, str]] = {}
    for m in matches:
        raw = m.group("date")
        if raw not in parts:
            parts[raw] = _DATE_PARTS_RX.match(raw).groups()
    order = date_order if date_order != "auto" else _decide_date_order(list(parts.values()), matches)
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


def _decide_date_order(parts: list[tuple[str, str, str]], matches: list[re.Match]) -> str:
    """ymd if years lead; dmy/mdy from any field > 12; ambiguous: mdy if the clock uses US AM/PM, else dmy."""
    if parts and all(len(a) == 4 for a, _, _ in parts):
        return "ymd"
    day_first = sum(1 for a, _, _ in parts if int(a) > 12)
    month_first = sum(1 for _, b, _ in parts if int(b) > 12)
    if day_first or month_first:
        return "dmy" if day_first >= month_first else "mdy"
    for m in matches[:_SAMPLE_LINES]:
        ampm = m.group("ampm")
        if ampm:
            return "mdy" if ampm in ("AM", "PM") else "dmy"
    return "dmy"


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


def _build_messages(text: str, matches: list[re.Match], dates: dict[str, tuple], *, ios: bool,
                    chat: str, source: str) -> list[Message]:
    """One Message per header; the text up to the next header is its body."""
    senders: dict[str, tuple[str | None, bool]] = {}
    messages = []
    append = messages.append
    ends = [m.start() - 1 for m in matches[1:]] + [len(text)]
    for m, end in zip(matches, ends):
        raw_date, raw_hour, minute, second, ampm, rest = m.groups()
        hour = int(raw_hour)
        if ampm:
            hour = hour % 12 + (12 if ampm[0] in "pP" else 0)
        year, month, day = dates[raw_date]
        try:
            time = datetime(year, month, day, hour, int(minute), int(second) if second else 0)
        except ValueError:
            raise ReplicaInputError(f"impossible time {raw_hour}:{minute} in a message header; fix the line or "
                                    f"re-export the chat ({HOW_TO_EXPORT})",
                                    path=source, line=text.count("\n", 0, m.start()) + 1) from None
        body_end = m.end()
        body = rest if end <= body_end else rest + text[body_end:end]

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
        append(_classify(time, sender, body.rstrip("\n"), ios, chat))
    return messages


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
    """Message of the right kind for a sender's body: edited marker, media, deleted, iOS notice or text."""
    edited = False
    if body.endswith(">") and (marker := _EDITED_RX.search(body)):
        body = body[: marker.start()]
        edited = True
    first, _, more = body.partition("\n")
    head = first.lstrip(_MARKS).rstrip() if first[:1] in _MARKS or first[-1:] == " " else first
    if len(head) < 50:
        key = head.lower().rstrip(".")
        media = MEDIA_PLACEHOLDERS.get(key)
        if media:
            return Message(time, sender, more.strip(), "media", "whatsapp", chat, edited, media=media)
        if key in DELETED:
            return Message(time, sender, "", "deleted", "whatsapp", chat, edited)
    media, caption = _match_media(head, more)
    if media:
        return Message(time, sender, caption, "media", "whatsapp", chat, edited, media=media)
    if ios and (first[:1] == "\u200e" or _STRICT_SYSTEM_RX.match(head)):
        return Message(time, None, _strip_marks(body), "system", "whatsapp", chat, edited)
    return Message(time, sender, body, "text", "whatsapp", chat, edited)


def _match_media(head: str, more: str) -> tuple[str | None, str]:
    """(media type, caption) for attachment/location/poll lines, else (None, '')."""
    if head[:1] == "<" and (m := _ATTACHED_RX.match(head)):
        return _file_media(m.group("file")), _join(head[m.end():], more)
    if head[-1:] == ")" and (m := _FILE_ATTACHED_RX.fullmatch(head)):
        return _file_media(m.group("file")), more.strip()
    if ":" in head[:20]:
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


def _join(same_line: str, more: str) -> str:
    return "\n".join(part for part in (same_line.strip(), more.strip()) if part)
