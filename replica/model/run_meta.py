"""replica.json, what a run's adapter folder or a `replica merge` folder records about its model: its one reader and
writer. The adapter checkpoint and `replica merge` write it; run inspection, loading and export read it here."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from replica.settings import GenerationSection

META_FILE = "replica.json"
MERGED_FILES = ("config.json", META_FILE)  # what `replica merge` writes besides weights and tokenizer


def read_meta(folder: str | Path) -> dict[str, Any]:
    """The metadata `folder` recorded (OSError when it is missing or unreadable, ValueError when it is not JSON)."""
    return json.loads((Path(folder) / META_FILE).read_text(encoding="utf-8"))


def write_meta(folder: str | Path, meta: dict[str, Any]) -> None:
    """Record `meta` in `folder` (a staging folder: the caller publishes it atomically)."""
    (Path(folder) / META_FILE).write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def is_merged_dir(path: str | Path) -> bool:
    """Whether `path` is a folder written by `replica merge` (a standalone model, no adapter)."""
    return all((Path(path).expanduser() / name).is_file() for name in MERGED_FILES)


def recorded_generation(meta: dict[str, Any]) -> GenerationSection:
    """The sampling block recorded in `meta`: a run's is in its training config, a merged folder's at the top."""
    return GenerationSection.of_run(meta["config"] if "config" in meta else meta)
