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
from replica.model.run_meta import META_FILE, read_meta

ADAPTER_DIR = "adapter"
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors", META_FILE)
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
    damaged = adapter_problems(adapter_dir)
    if damaged:
        raise ReplicaInputError(
            f"damaged run: {'; '.join(damaged)}; re-export the adapter by resuming training "
            "(python train.py ckpt_path=<run>/checkpoints/last.ckpt) or retrain",
            path=str(adapter_dir),
        )
    try:
        meta = read_meta(adapter_dir)
    except (OSError, ValueError) as err:
        raise ReplicaInputError(f"unreadable run metadata ({err}); re-export by resuming training", path=str(adapter_dir / META_FILE)) from None
    version = meta.get("format_version")
    if version != FORMAT_VERSION or not isinstance(meta.get("config"), dict):
        raise ReplicaInputError(
            f"{run_dir}: made by an incompatible Replica version (run format {version}, this is replica "
            f"{__version__} with run format {FORMAT_VERSION}); retrain or use the matching replica version"
        )
    return RunInfo(run_dir, adapter_dir, meta)


TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json")  # any one, plus tokenizer_config.json


def _json_object(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def adapter_problems(adapter_dir: Path) -> list[str]:
    """What is wrong with an exported adapter folder's files (truncated weights, bad JSON, missing tokenizer)."""
    from safetensors import safe_open

    problems = []
    config = _json_object(adapter_dir / "adapter_config.json")
    if config is None or not isinstance(config.get("peft_type"), str) or not isinstance(config.get("r"), int):
        problems.append("adapter_config.json is not a PEFT adapter config (invalid JSON or no peft_type/r)")
    try:
        with safe_open(str(adapter_dir / "adapter_model.safetensors"), framework="np") as weights:
            if not list(weights.keys()):
                problems.append("adapter_model.safetensors holds no tensors")
    except Exception as err:  # SafetensorError (truncated, bad header) or OSError
        problems.append(f"adapter_model.safetensors is truncated or corrupt ({' '.join(str(err).split())[:120]})")
    if _json_object(adapter_dir / "tokenizer_config.json") is None:
        problems.append("tokenizer_config.json is missing or not valid JSON")
    present = [name for name in TOKENIZER_FILES if (adapter_dir / name).is_file()]
    if not present:
        problems.append(f"the tokenizer files are missing (one of {', '.join(TOKENIZER_FILES)})")
    elif present[0].endswith(".json") and _json_object(adapter_dir / present[0]) is None:
        problems.append(f"{present[0]} is not valid JSON")
    return problems
