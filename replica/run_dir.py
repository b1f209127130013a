"""A finished run folder: its file layout and metadata, checked without loading any model.

Everything here sits below training, callbacks and inference: it imports nothing but errors and the version.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from replica import __version__
from replica.errors import ReplicaInputError

ADAPTER_DIR = "adapter"
ADAPTER_META = "replica.json"
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors", ADAPTER_META)
FORMAT_VERSION = 1  # bump when the adapter folder layout or replica.json keys change incompatibly


@dataclass
class RunInfo:
    run_dir: Path
    adapter_dir: Path
    meta: dict[str, Any]  # replica.json: format, role tokens, base model, resolved config, ...

    @property
    def config(self) -> dict[str, Any]:
        return self.meta["config"]


def inspect_run(run_dir: str | Path) -> RunInfo:
    """Check that `run_dir` is a complete run of a compatible version; one clear error otherwise."""
    run_dir = Path(run_dir).expanduser()
    if not run_dir.is_dir():
        raise ReplicaInputError(f"{run_dir}: no such run directory (pass the folder train.py printed, e.g. logs/train/runs/<date>)")
    adapter_dir = run_dir / ADAPTER_DIR if (run_dir / ADAPTER_DIR).is_dir() else run_dir
    missing = [name for name in ADAPTER_FILES if not (adapter_dir / name).is_file()]
    if missing:
        raise ReplicaInputError(
            f"{run_dir}: incomplete run, {ADAPTER_DIR}/ lacks {', '.join(missing)} "
            "(training did not reach its first validation? resume it with ckpt_path=<run>/checkpoints/last.ckpt)"
        )
    try:
        meta = json.loads((adapter_dir / ADAPTER_META).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise ReplicaInputError(f"unreadable run metadata ({err}); re-export by resuming training", path=str(adapter_dir / ADAPTER_META)) from None
    version = meta.get("format_version")
    if version != FORMAT_VERSION or not isinstance(meta.get("config"), dict):
        raise ReplicaInputError(
            f"{run_dir}: made by an incompatible Replica version (run format {version}, this is replica "
            f"{__version__} with run format {FORMAT_VERSION}); retrain or use the matching replica version"
        )
    return RunInfo(run_dir, adapter_dir, meta)
