"""Paths as this process shows them: export file names masked by the ingest layer's rules, with one masker of
numbers, e-mails and URLs for the whole process (no contact names: a title's words are masked as names anyway)."""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

from replica.privacy import show_paths_with

if TYPE_CHECKING:  # imported when a path is first shown (`replica parse` stays free of the masker's imports)
    from replica.prepare.pii import PiiMasker


@cache
def _process_masker() -> PiiMasker:
    """The process's one masker of file names, so one name keeps one placeholder in every line."""
    from replica.prepare.pii import PiiMasker

    return PiiMasker()


def display_path(path: str) -> str:
    """`path` with the personal parts of its export names masked."""
    # imported here, not at the top: the parsers load only when a path is shown
    from replica.ingest.file_names import mask_export_path

    return mask_export_path(str(path), _process_masker())


def mask_shown_paths() -> None:
    """Show every path of this process (logs, console lines, ReplicaInputError) through `display_path`."""
    show_paths_with(display_path)
