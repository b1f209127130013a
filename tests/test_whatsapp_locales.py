"""One hand-written sample export per locale file in replica/ingest/locales/, parsed exactly.

Each `tests/whatsapp_locales/<locale>.toml` holds `export` (an invented chat written with that language's real
WhatsApp strings) and `expected`: one row per message, [time, sender or "", kind, media or "", text].
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from replica.ingest.whatsapp import parse_whatsapp
from replica.ingest.whatsapp_locales import LIST_KEYS, LOCALES_DIR, load_tables, read_locale

SAMPLES = Path(__file__).with_name("whatsapp_locales")
LOCALES = sorted(path.stem for path in LOCALES_DIR.glob("*.toml"))


def test_every_locale_file_has_a_sample_and_every_sample_a_locale():
    assert LOCALES, "no locale files found"
    assert sorted(path.stem for path in SAMPLES.glob("*.toml")) == LOCALES


@pytest.mark.parametrize("locale", LOCALES)
def test_locale_sample_parses_exactly(locale):
    sample = tomllib.loads((SAMPLES / f"{locale}.toml").read_text(encoding="utf-8"))
    messages = parse_whatsapp(sample["export"], source=f"{locale}.txt", chat="Sample",
                              date_order=sample.get("date_order", "auto"))
    got = [[m.time.isoformat(), m.sender or "", m.kind, m.media or "", m.text] for m in messages]
    assert got == sample["expected"]


EXPECTATIONS = tomllib.loads(Path(__file__).with_name("whatsapp_locale_expectations.toml").read_text(encoding="utf-8"))
# key -> (what the contact writes with that string, expected (kind, media, text, edited))
LINES = {
    "media": ("{}", ("media", "other", "", False)),
    "deleted": ("{}", ("deleted", None, "", False)),
    "edited": ("ok 👍 {}", ("text", None, "ok 👍", True)),
    "file_attached": ("IMG-20240301-WA0007.jpg ({})", ("media", "image", "", False)),
}


@pytest.mark.parametrize("locale", sorted(EXPECTATIONS))
def test_locale_strings_match_hand_written_expectations(locale):
    """A wrong or missing string in a locale file turns its line into plain text (or a text with the marker)."""
    keys = sorted(EXPECTATIONS[locale])
    assert keys and set(keys) <= set(LINES) and (LOCALES_DIR / f"{locale}.toml").is_file()
    export = "".join(f"01/03/2024, 10:{minute:02d} - Ana Lima: {LINES[key][0].format(EXPECTATIONS[locale][key])}\n"
                     for minute, key in enumerate(keys))
    messages = parse_whatsapp(export, source=f"{locale}.txt", chat="Ana Lima")
    got = [(m.kind, m.media, m.text, m.edited) for m in messages]
    assert got == [LINES[key][1] for key in keys]
    assert all(m.sender == "Ana Lima" for m in messages)


@pytest.mark.parametrize("locale", LOCALES)
def test_locale_file_is_valid(locale):
    data = read_locale(LOCALES_DIR / f"{locale}.toml")
    assert data["language"] and data["sources"]
    assert any(key in data for key in (*LIST_KEYS, "media_omitted"))


def test_unknown_key_or_media_type_is_reported_with_the_file(tmp_path):
    (tmp_path / "xx.toml").write_text('language = "X"\nsources = []\ndeletd = ["a"]\n[media_omitted]\n"<a>" = "foto"\n',
                                      encoding="utf-8")
    with pytest.raises(ValueError, match=r"xx\.toml: .*unknown key 'deletd'.*media_omitted must map"):
        load_tables(tmp_path)
