"""WhatsApp export parser: every header family, locale and placeholder variant, on small inline exports."""

from __future__ import annotations

from datetime import datetime

import pytest

from replica.errors import ReplicaInputError
from replica.ingest.whatsapp import looks_like_whatsapp, parse_whatsapp, why_not_whatsapp

LRM = "\u200e"
NNBSP = "\u202f"
NBSP = "\u00a0"


def parse(text: str, **kwargs):
    return parse_whatsapp(text, source="chat_export.txt", chat="Friends", **kwargs)


def only(text: str, **kwargs):
    (message,) = parse(text, **kwargs)
    return message


# ---- line formats ------------------------------------------------------------------------------------------

def test_android_lines_and_multiline_continuations():
    messages = parse(
        "12/03/2021, 21:04 - Luca: first line\n"
        "second line\n"
        "\n"
        "third after a blank\n"
        "12/03/2021, 21:05 - Anna: ok\n"
    )
    assert [(m.time, m.sender, m.text, m.kind) for m in messages] == [
        (datetime(2021, 3, 12, 21, 4), "Luca", "first line\nsecond line\n\nthird after a blank", "text"),
        (datetime(2021, 3, 12, 21, 5), "Anna", "ok", "text"),
    ]
    assert all(m.platform == "whatsapp" and m.chat == "Friends" for m in messages)
    assert not any(m.edited or m.forwarded or m.media for m in messages)


def test_ios_bracketed_lines_with_seconds():
    messages = parse("[12/03/2021, 21:04:11] Luca: ciao\n[13/03/2021, 08:00:59] Anna: hi\nthere\n")
    assert [(m.time, m.sender, m.text) for m in messages] == [
        (datetime(2021, 3, 12, 21, 4, 11), "Luca", "ciao"),
        (datetime(2021, 3, 13, 8, 0, 59), "Anna", "hi\nthere"),
    ]


@pytest.mark.parametrize("line", [
    "12/03/2021 21:04: Luca: hello",  # legacy
    "12/03/2021, 21:04: Luca: hello",
    "12/03/2021 21:04 - Luca: hello",  # Android without comma
    "12/03/2021,21:04 - Luca: hello",
    "12.03.21, 21:04 - Luca: hello",  # German, 2-digit year
    "12-03-2021 21:04 - Luca: hello",
    "12.03.2021, 21.04 - Luca: hello",  # dotted clock
    "[12/03/2021 21:04] Luca: hello",  # iOS without comma or seconds
    "[12.03.21, 21:04:00] Luca: hello",
    "12/3/21, 21:04 - Luca: hello",  # single-digit month
])
def test_header_separator_and_year_variants(line):
    message = only(line)
    assert (message.time, message.sender, message.text, message.kind) == (
        datetime(2021, 3, 12, 21, 4), "Luca", "hello", "text")


def test_legacy_lines_with_seconds():
    message = only("12/03/2021 21:04:11: Luca: hello")
    assert (message.time, message.sender, message.text) == (datetime(2021, 3, 12, 21, 4, 11), "Luca", "hello")


# ---- day/month order ----------------------------------------------------------------------------------------

def test_day_first_decided_from_a_later_line():
    messages = parse("03/04/2021, 10:00 - Luca: a\n25/04/2021, 10:00 - Luca: b\n")
    assert [m.time.date() for m in messages] == [datetime(2021, 4, 3).date(), datetime(2021, 4, 25).date()]


def test_month_first_decided_from_a_later_line():
    messages = parse("03/04/2021, 10:00 - Luca: a\n04/25/2021, 10:00 - Luca: b\n")
    assert [m.time.date() for m in messages] == [datetime(2021, 3, 4).date(), datetime(2021, 4, 25).date()]


def test_ambiguous_file_defaults_to_day_first():
    assert only("03/04/2021, 10:00 - Luca: a").time == datetime(2021, 4, 3, 10, 0)


def test_ambiguous_file_with_us_clock_is_month_first():
    assert only("3/4/21, 10:00 PM - Luca: a").time == datetime(2021, 3, 4, 22, 0)


def test_override_forces_the_order():
    assert only("03/04/2021, 10:00 - Luca: a", date_order="mdy").time == datetime(2021, 3, 4, 10, 0)
    assert only("3/4/21, 10:00 PM - Luca: a", date_order="dmy").time == datetime(2021, 4, 3, 22, 0)
    assert only("21/03/12, 10:00 - Luca: a", date_order="ymd").time == datetime(2021, 3, 12, 10, 0)


def test_override_contradicted_by_the_file_names_the_line():
    with pytest.raises(ReplicaInputError, match=r"chat_export\.txt:2: .*25/04/2021.*mdy"):
        parse("03/04/2021, 10:00 - Luca: a\n25/04/2021, 10:00 - Luca: b\n", date_order="mdy")


@pytest.mark.parametrize("line", [
    "2021-03-12, 21:04 - Luca: hello",
    "[2021-03-12, 21:04:00] Luca: hello",
    "2021/03/12 21:04 - Luca: hello",
])
def test_iso_year_first_dates(line):
    assert only(line).time == datetime(2021, 3, 12, 21, 4)


# ---- clocks -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("clock, hour", [
    ("9:04 PM", 21), ("9:04 pm", 21), ("9:04 p. m.", 21), ("9:04 p.m.", 21), ("9:04 a.m.", 9),
    (f"9:04{NNBSP}PM", 21), (f"9:04{NBSP}p.{NBSP}m.", 21), ("9:04PM", 21),
    ("12:04 AM", 0), ("12:04 a. m.", 0), ("12:04 PM", 12), ("12:04 pm", 12), ("00:04", 0), ("23:04", 23),
])
def test_12h_and_24h_clocks(clock, hour):
    assert only(f"25/12/2021, {clock} - Luca: hi").time == datetime(2021, 12, 25, hour, 4)


def test_12h_clock_with_seconds_in_ios():
    assert only(f"[25/12/2021, 9:04:11{NNBSP}PM] Luca: hi").time == datetime(2021, 12, 25, 21, 4, 11)


# ---- direction marks, CRLF, BOM -----------------------------------------------------------------------------

def test_bom_crlf_and_direction_marks():
    text = (
        f"\ufeff{LRM}[12/03/2021, 21:04:11] {LRM}Luca\u202c: ciao\r\n"
        f"seconda riga\r\n"
        f"\u200f[12/03/2021, 21:05:00] Anna: \u05e9\u05dc\u05d5\u05dd {LRM}ok\r\n"
    )
    first, second = parse(text)
    assert (first.time, first.sender, first.text) == (datetime(2021, 3, 12, 21, 4, 11), "Luca", "ciao\nseconda riga")
    assert (second.sender, second.text) == ("Anna", f"\u05e9\u05dc\u05d5\u05dd {LRM}ok")


def test_direction_marks_inside_android_header():
    message = only(f"{LRM}12/03/2021, {LRM}21:04{LRM} - Luca: hi")
    assert (message.time, message.sender, message.text) == (datetime(2021, 3, 12, 21, 4), "Luca", "hi")


# ---- system lines -------------------------------------------------------------------------------------------

def test_android_system_lines_have_no_sender():
    messages = parse(
        "12/03/2021, 21:04 - Messages and calls are end-to-end encrypted. No one outside of this chat, not even "
        "WhatsApp, can read or listen to them. Tap to learn more.\n"
        '12/03/2021, 21:04 - You created group "Trip"\n'
        "12/03/2021, 21:05 - Luca added Anna\n"
        '12/03/2021, 21:06 - Luca changed the subject from "Trip" to "Trip: Rome"\n'
        "12/03/2021, 21:07 - Anna: finally\n"
    )
    assert [(m.sender, m.kind) for m in messages] == [(None, "system")] * 4 + [("Anna", "text")]
    assert messages[1].text == 'You created group "Trip"'
    assert messages[3].text == 'Luca changed the subject from "Trip" to "Trip: Rome"'


@pytest.mark.parametrize("line, text", [
    (f"[12/03/2021, 21:04:11] Trip: {LRM}Messages and calls are end-to-end encrypted. No one outside of this "
     f"chat, not even WhatsApp, can read or listen to them.",
     "Messages and calls are end-to-end encrypted. No one outside of this chat, not even WhatsApp, can read or "
     "listen to them."),
    ("[12/03/2021, 21:04:11] Trip: Messages and calls are end-to-end encrypted.",
     "Messages and calls are end-to-end encrypted."),
    (f"[12/03/2021, 21:04:11] Trip: {LRM}Luca added Anna", "Luca added Anna"),
    (f"[12/03/2021, 21:04:11] Trip: {LRM}Luca ha aggiunto Anna", "Luca ha aggiunto Anna"),
    (f"[12/03/2021, 21:04:11] {LRM}Luca created group “Trip: Rome”", "Luca created group “Trip: Rome”"),
    (f"[12/03/2021, 21:04:11] Luca: {LRM}Missed voice call", "Missed voice call"),
    ("[12/03/2021, 21:04:11] Luca: Chiamata vocale persa", "Chiamata vocale persa"),
    (f"[12/03/2021, 21:04:11] Luca: {LRM}Your security code with Luca changed.",
     "Your security code with Luca changed."),
])
def test_ios_system_lines(line, text):
    message = only(line)
    assert (message.sender, message.text, message.kind) == (None, text, "system")


def test_ios_message_mentioning_added_is_text():
    message = only("[12/03/2021, 21:04:11] Luca: Mom added salt")
    assert (message.sender, message.text, message.kind) == ("Luca", "Mom added salt", "text")


# ---- media --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("body, media", [
    ("<Media omitted>", "other"), ("<Media omessi>", "other"), ("<Médias omis>", "other"),
    ("<Multimedia omitido>", "other"), ("<Medien ausgeschlossen>", "other"), ("<Mídia oculta>", "other"),
    (f"{LRM}image omitted", "image"), ("video omitted", "video"), ("audio omitted", "audio"),
    ("sticker omitted", "sticker"), (f"{LRM}GIF omitted", "gif"), ("document omitted", "document"),
    ("immagine omessa", "image"), ("video omesso", "video"), ("audio omesso", "audio"),
    ("sticker omesso", "sticker"), ("GIF omessa", "gif"), ("documento omesso", "document"),
    ("image absente", "image"), ("vidéo absente", "video"), ("imagen omitida", "image"),
    ("Bild weggelassen", "image"), ("imagem ocultada", "image"),
    (f"{LRM}<attached: 00000012-PHOTO-2021-03-12-21-04-11.jpg>", "image"),
    ("<attached: 00000013-VIDEO-2021-03-12-21-04-11.mp4>", "video"),
    ("<attached: 00000014-AUDIO-2021-03-12-21-04-11.opus>", "audio"),
    ("<attached: 00000015-STICKER-2021-03-12-21-04-11.webp>", "sticker"),
    ("<attached: 00000016-Menu.pdf>", "document"),
    ("<allegato: 00000017-PHOTO-2021-03-12-21-04-11.jpg>", "image"),
    ("IMG-20210312-WA0001.jpg (file attached)", "image"),
    ("VID-20210312-WA0002.mp4 (file allegato)", "video"),
    ("PTT-20210312-WA0003.opus (fichier joint)", "audio"),
    ("STK-20210312-WA0004.webp (archivo adjunto)", "sticker"),
    ("DOC-20210312-WA0005.pdf (Datei angehängt)", "document"),
    ("IMG-20210312-WA0006.jpg (arquivo anexado)", "image"),
    ("location: https://maps.google.com/?q=45.46,9.19", "location"),
    ("posizione: https://maps.google.com/?q=45.46,9.19", "location"),
    ("Live location shared", "location"),
    ("Anna Rossi.vcf (file attached)", "contact"),
    (f"{LRM}contact card omitted", "contact"),
])
def test_media_placeholders(body, media):
    for line in (f"12/03/2021, 21:04 - Luca: {body}", f"[12/03/2021, 21:04:11] Luca: {body}"):
        message = only(line)
        assert (message.sender, message.text, message.kind, message.media) == ("Luca", "", "media", media)


def test_media_captions_are_kept_as_text():
    photo = f"{LRM}<attached: 00000012-PHOTO-2021-03-12-21-04-11.jpg>"
    ios_same_line = only(f"{LRM}[12/03/2021, 21:04:11] Luca: {photo} tramonto")
    ios_next_line = only(f"{LRM}[12/03/2021, 21:04:11] Luca: {photo}\ntramonto\nsul mare")
    android = only("12/03/2021, 21:05 - Luca: IMG-20210312-WA0001.jpg (file attached)\nche vista\n")
    assert (ios_same_line.kind, ios_same_line.media, ios_same_line.text) == ("media", "image", "tramonto")
    assert (ios_next_line.kind, ios_next_line.media, ios_next_line.text) == ("media", "image", "tramonto\nsul mare")
    assert (android.kind, android.media, android.text) == ("media", "image", "che vista")


def test_poll_keeps_question_and_drops_options():
    for header in ("POLL:", "SONDAGGIO:"):
        message = only(f"12/03/2021, 21:04 - Luca: {header}\nPizza or sushi?\nOPTION: Pizza (2 votes)\n"
                       "OPTION: Sushi (1 vote)\n")
        assert (message.kind, message.media, message.text) == ("media", "poll", "Pizza or sushi?")


def test_text_that_merely_mentions_media_words_is_text():
    message = only("12/03/2021, 21:04 - Luca: the image omitted from the report (file attached later)")
    assert (message.kind, message.media) == ("text", None)


# ---- deleted and edited -------------------------------------------------------------------------------------

@pytest.mark.parametrize("body", [
    "This message was deleted", "You deleted this message", f"{LRM}This message was deleted.",
    f"{LRM}You deleted this message.", "Questo messaggio è stato eliminato", "Hai eliminato questo messaggio",
    "Ce message a été supprimé", "Vous avez supprimé ce message", "Se eliminó este mensaje",
    "Eliminaste este mensaje", "Diese Nachricht wurde gelöscht", "Du hast diese Nachricht gelöscht",
    "Mensagem apagada", "Você apagou esta mensagem",
])
def test_deleted_messages(body):
    message = only(f"[12/03/2021, 21:04:11] Luca: {body}")
    assert (message.sender, message.text, message.kind, message.media) == ("Luca", "", "deleted", None)


@pytest.mark.parametrize("marker", [
    "<This message was edited>", "<Questo messaggio è stato modificato>", "<Ce message a été modifié>",
    "<Se editó este mensaje.>", "<Diese Nachricht wurde bearbeitet>", "<Esta mensagem foi editada>",
])
def test_edited_marker_is_stripped(marker):
    android = only(f"12/03/2021, 21:04 - Luca: see you at 8 {marker}")
    ios = only(f"[12/03/2021, 21:04:11] Luca: see you\nat 8 {LRM}{marker}")
    assert (android.text, android.edited, android.kind) == ("see you at 8", True, "text")
    assert (ios.text, ios.edited, ios.kind) == ("see you\nat 8", True, "text")


def test_unedited_message_ending_in_angle_bracket_is_untouched():
    message = only("12/03/2021, 21:04 - Luca: <3 <b>")
    assert (message.text, message.edited) == ("<3 <b>", False)


# ---- senders ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("raw, sender", [
    ("+39 333 123 4567", "+39 333 123 4567"), ("~ Luca", "Luca"), (f"~{NNBSP}Luca", "Luca"),
    ("Anna 🌸", "Anna 🌸"), (f"{LRM}+39 333 123 4567{LRM}", "+39 333 123 4567"),
])
def test_sender_variants(raw, sender):
    for line in (f"12/03/2021, 21:04 - {raw}: ciao: come va", f"[12/03/2021, 21:04:11] {raw}: ciao: come va"):
        message = only(line)
        assert (message.sender, message.text, message.kind) == (sender, "ciao: come va", "text")


# ---- detection and bad input --------------------------------------------------------------------------------

def test_looks_like_whatsapp():
    assert looks_like_whatsapp("\ufeff\n\n12/03/2021, 21:04 - Luca: hi")
    assert looks_like_whatsapp("[12/03/2021, 21:04:11] Luca: hi")
    assert not looks_like_whatsapp("Dear diary,\ntoday was 12/03/2021.\n")
    assert not looks_like_whatsapp("")
    assert not looks_like_whatsapp("prose\n" * 30 + "12/03/2021, 21:04 - Luca: hi")


@pytest.mark.parametrize("text", ["", "\ufeff\r\n", "Dear diary,\nit rained on 12/03/2021 all day.\n"])
def test_text_without_headers_is_rejected_with_export_hint(text):
    with pytest.raises(ReplicaInputError, match=r"^chat_export\.txt: .*WhatsApp.*Export chat > Without media"):
        parse(text)


def test_date_impossible_in_every_order_names_the_line():
    with pytest.raises(ReplicaInputError, match=r"^chat_export\.txt:2: .*32/13/2021.*every"):
        parse("12/03/2021, 21:04 - Luca: hi\n32/13/2021, 21:04 - Luca: hi\n")


def test_impossible_time_names_the_line():
    with pytest.raises(ReplicaInputError, match=r"^chat_export\.txt:1: .*25:04"):
        parse("12/03/2021, 25:04 - Luca: hi\n")


def test_unknown_date_order_is_rejected():
    with pytest.raises(ReplicaInputError, match="date_order"):
        parse("12/03/2021, 21:04 - Luca: hi", date_order="myd")


# ---- scale (speed is measured in benchmarks/parse_speed.py, not here) -------------------------------------------

def test_70k_messages_parse_completely():
    names = ("Luca", "Anna 🌸", "+39 333 123 4567", "~ Marco")
    lines = []
    for i in range(70_000):
        lines.append(f"{i % 28 + 1:02d}/{i // 6000 + 1:02d}/2021, {i % 24:02d}:{i % 60:02d} - "
                     f"{names[i % 4]}: message {i}")
        if i % 10 == 0:
            lines.append("a continuation line")
    text = "\n".join(lines)
    messages = parse(text)
    assert len(messages) == 70_000
    assert messages[-1].text == "message 69999"
    assert sum(m.text.endswith("\na continuation line") for m in messages) == 7_000


def test_nordic_time_connector_words():
    finnish = parse("12.3.2021 klo 21.04 - Matti: moi\n13.3.2021 klo 8.05 - Liisa: hei")
    assert [(m.time, m.sender, m.text) for m in finnish] == [
        (datetime(2021, 3, 12, 21, 4), "Matti", "moi"),
        (datetime(2021, 3, 13, 8, 5), "Liisa", "hei"),
    ]
    danish = parse("[12.03.2021 kl. 21.04.11] Mette: hej")
    assert (danish[0].time, danish[0].sender) == (datetime(2021, 3, 12, 21, 4, 11), "Mette")


# ---- localized headers ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("line, when", [
    ("1/5/2025، 09:17 - Layla: hi", datetime(2025, 5, 1, 9, 17)),  # Arabic comma (Android)
    ("[١٥/٠٩/٢٠٢٦، ٨:٤٦:٠٠ م] Layla: hi", datetime(2026, 9, 15, 20, 46)),  # Arabic-Indic digits, م = PM
    ("[١٥/٠٩/٢٠٢٦، ٨:٤٦:٠٠ ص] Layla: hi", datetime(2026, 9, 15, 8, 46)),  # ص = AM
    ("۱۵/۰۹/۲۰۲۶، ۲۰:۴۶ - Layla: hi", datetime(2026, 9, 15, 20, 46)),  # Persian digits
    ("7.11.2021 07:48 - Layla: hi", datetime(2021, 11, 7, 7, 48)),  # no comma between date and time
    ("07/11/2021, 09.43 - Layla: hi", datetime(2021, 11, 7, 9, 43)),  # dotted clock
    ("2021. 11. 7. 오후 9:43 - Layla: hi", datetime(2021, 11, 7, 21, 43)),  # Korean date, AM/PM first
    ("[2021/11/07 午前9:43:05] Layla: hi", datetime(2021, 11, 7, 9, 43, 5)),
    ("07/11/2021, 9:43 p. m. - Layla: hi", datetime(2021, 11, 7, 21, 43)),
    ("2021/11/07, 13:34. - Layla: hi", datetime(2021, 11, 7, 13, 34)),  # dot after the clock
    ("\u200f07/11/2021\u200f، \u200f21:43\u200f - \u200fLayla: hi", datetime(2021, 11, 7, 21, 43)),  # RTL marks
    ("\u200f[17/11/2021\u200f, \u200f9:43:00\u200f PM\u200f] Layla: hi", datetime(2021, 11, 17, 21, 43)),
    ("\u200f[07/11/2021\u200f, \u200f9:43:00\u200f PM\u200f] Layla: hi", datetime(2021, 7, 11, 21, 43)),  # US
    ("7. 11. 2021. 21:43:00 Layla: hi", datetime(2021, 11, 7, 21, 43)),  # spaced date, no separator
])
def test_localized_headers(line, when):
    message = only(line)
    assert (message.time, message.sender, message.text, message.kind) == (when, "Layla", "hi", "text")


# ---- attachments anywhere --------------------------------------------------------------------------------------

@pytest.mark.parametrize("body, media, text", [
    (f"{LRM}Invoice.pdf • 2 pages {LRM}<attached: 00000004-Invoice.pdf>", "document", ""),
    (f"look at this {LRM}<attached: 00000012-PHOTO-2021-03-12-21-04-11.jpg>", "image", "look at this"),
    ("< attached: 00000042-PHOTO-2020-06-07-15-13-20.jpg >", "image", ""),
    (f"2015-08-04-PHOTO-00004762.jpg <{LRM}attached>", "image", ""),
    (f"{LRM}<attached: 00000013-VIDEO-2021-03-12.mp4>\nour holiday", "video", "our holiday"),
])
def test_ios_attachments_anywhere_keep_the_caption(body, media, text):
    messages = parse(f"[12/03/2021, 21:04:11] Luca: hi\n[12/03/2021, 21:04:12] Luca: {body}")
    assert (messages[1].sender, messages[1].kind, messages[1].media, messages[1].text) == ("Luca", "media", media, text)


def test_lrm_lead_does_not_make_a_sender_line_system():
    messages = parse(
        f"[12/03/2021, 21:04:11] Trip: {LRM}Luca added Anna\n"
        f"[12/03/2021, 21:04:12] Luca: ciao\n"
        f"[12/03/2021, 21:04:13] Luca: {LRM}⁨Anna⁩ is the best\n"
    )
    assert [(m.sender, m.kind) for m in messages] == [(None, "system"), ("Luca", "text"), ("Luca", "text")]


def test_ios_actor_notice_repeating_the_sender_is_system():
    messages = parse("[28/02/2022, 9:52:58 PM] ~ Ana: ~ Ana created this group\n"
                     "[28/02/2022, 9:53:00 PM] ~ Ana: welcome all\n")
    assert [(m.sender, m.kind) for m in messages] == [(None, "system"), ("Ana", "text")]


# ---- day/month order from chronology ---------------------------------------------------------------------------

def test_ambiguous_dates_take_the_chronological_reading():
    messages = parse("06/03/2017, 00:45 - Ana: a\n08/05/2017, 01:48 - Ben: b\n09/04/2017, 01:50 - Ana: c\n")
    assert [m.time.date() for m in messages] == [
        datetime(2017, 6, 3).date(), datetime(2017, 8, 5).date(), datetime(2017, 9, 4).date()]


def test_chronological_reading_day_first():
    messages = parse("03/06/2017, 00:45 - Ana: a\n05/08/2017, 01:48 - Ben: b\n04/09/2017, 01:50 - Ana: c\n")
    assert [m.time.month for m in messages] == [6, 8, 9]


def test_date_order_override_beats_chronology():
    messages = parse("06/03/2017, 00:45 - Ana: a\n08/05/2017, 01:48 - Ben: b\n", date_order="dmy")
    assert [m.time.month for m in messages] == [3, 5]


# ---- content detection ----------------------------------------------------------------------------------------

def test_source_file_quoting_chat_lines_is_not_an_export():
    source = ('"""Quote."""\n\nSAMPLE = """\\\n12/03/2021, 21:04 - Anna: hi\n12/03/2021, 21:05 - Ben: hello\n"""\n\n'
              + "def f():\n    return 1\n" * 10)
    assert not looks_like_whatsapp(source)
    assert "first line" in why_not_whatsapp(source)


def test_log_opening_with_a_chat_line_then_mostly_other_lines_is_not_an_export():
    log = "12/03/2021, 21:04 - Anna: hi\n" + "".join(f"INFO worker {i} started\n" for i in range(60))
    assert "only 1 of its first 61 lines" in why_not_whatsapp(log)


def test_chat_with_long_multiline_messages_is_an_export():
    chat = "".join(f"12/03/2021, 21:{i:02d} - Anna: verse {i}\n" + "a line of the poem\n" * 6 for i in range(20))
    assert why_not_whatsapp(chat) is None


def test_folder_run_skips_a_source_file_quoting_chat_lines_with_the_reason(tmp_path):
    from replica.ingest import load_exports

    (tmp_path / "quote.py").write_text('"""Sample."""\nLINES = """\n12/03/2021, 21:04 - Anna: hi\n'
                                       '12/03/2021, 21:05 - Ben: hello\n"""\n\ndef f():\n    return LINES\n',
                                       encoding="utf-8")
    (tmp_path / "WhatsApp Chat with Anna.txt").write_text("12/03/2021, 21:04 - Anna: hi\n12/03/2021, 21:05 - Ben: yo\n",
                                                          encoding="utf-8")
    result = load_exports([tmp_path])
    assert [(m.sender, m.text) for m in result.messages] == [("Anna", "hi"), ("Ben", "yo")]
    ((name, reason),) = result.skipped
    assert name.endswith("quote.py") and "first line is not a WhatsApp message header" in reason
