"""Names and paths as logs, console lines and error messages show them: without the contact names and numbers they hold.

The ground floor: this module knows no export format and no masker, so it imports nothing of Replica. The layers that
know them plug them in:
- `mask_title(title, masker)` masks a chat title with the masker it is given (anything with `mask` and `placeholder`);
- `display_path(path)` shows a path the way the process was told to with `show_paths_with`. A command's entry point
  installs the masking of export file names (`replica.prepare.shown_paths.mask_shown_paths`) before it reads anything;
  until then a path is shown as given.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Callable
from typing import Protocol

PathDisplay = Callable[[str], str]

# Bidi/direction marks and zero-width characters that exports sprinkle around names, plus WhatsApp's "~".
INVISIBLE = re.compile("[~\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")
NAME_KEY_PREFIX = "sha256_"  # a key Hydra's override grammar reads unquoted
_NAME_KEY = re.compile(re.escape(NAME_KEY_PREFIX) + "[0-9a-f]{16}")
_PLACEHOLDER = re.compile(r"(<[A-Z]+_\d+>)")
_WORDS = re.compile(r"[^\W\d_](?:[\w'’.-]*[^\W_])?(?:\s+[^\W\d_](?:[\w'’.-]*[^\W_])?)*")


class Masker(Protocol):
    """What the masking of names and paths needs from a masker (`replica.prepare.pii.PiiMasker` is one)."""

    def mask(self, text: str) -> str:
        """`text` with every personal value it finds replaced by a `<KIND_n>` placeholder."""

    def placeholder(self, kind: str, key: str, raw: str) -> str:
        """The placeholder of one value: the same `key` of a `kind` always gets the same one."""


def _as_given(path: str) -> str:
    """A path shown unchanged: no masking of export names is installed in this process."""
    return path


_display: PathDisplay = _as_given


def show_paths_with(display: PathDisplay) -> None:
    """From now on `display_path` (and every ReplicaInputError naming a file) shows paths through `display`."""
    global _display
    _display = display


def display_path(path: str) -> str:
    """`path` as this process shows it: with the personal parts of export names masked once masking is installed."""
    return _display(str(path))


def mask_title(title: str, masker: Masker) -> str:
    """A chat title is a person or a group named by people: what `masker` finds masked, then every run of words."""
    pieces = _PLACEHOLDER.split(masker.mask(title))

    def name(match: re.Match) -> str:
        words = match.group()
        return masker.placeholder("NAME", " ".join(words.casefold().split()), words)

    return "".join(piece if _PLACEHOLDER.fullmatch(piece) else _WORDS.sub(name, piece) for piece in pieces)


def normalize_name(name: str) -> str:
    """Casefold, strip accents, direction marks and `~`, collapse whitespace: "~ Léa  MARTIN" -> "lea martin"."""
    return " ".join(strip_accents(INVISIBLE.sub(" ", name).casefold()).split())


def strip_accents(text: str) -> str:
    return "".join(char for char in unicodedata.normalize("NFKD", text) if not unicodedata.combining(char))


def name_key(name: str) -> str:
    """What a config keeps of a contact's or chat's name: `sha256_` + 16 hex digits of its normalized form (a key
    already in that form is kept), so every written copy of the config matches the same sender without naming it."""
    if _NAME_KEY.fullmatch(name):
        return name
    return NAME_KEY_PREFIX + hashlib.sha256(normalize_name(name).encode("utf-8")).hexdigest()[:16]
