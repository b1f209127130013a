"""Reload a finished training run: its resolved config, base model, adapter, tokenizer and chat format."""

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


def load_run(run_dir: str | Path, *, device: str = "cpu", quantized: bool = True):
    """(PeftModel in eval mode, ChatFormatter, RunInfo) for a finished run; one model serves base and adapter."""
    from peft import PeftModel
    from transformers import AutoTokenizer

    from replica.training.base_model import load_base_model
    from replica.training.formatting import ChatFormatter
    from replica.training.tokens import RoleTokens, ensure_embedding_rows

    info = inspect_run(run_dir)
    cfg = info.config
    tokenizer = AutoTokenizer.from_pretrained(info.adapter_dir)
    base_path = info.meta["base_model"]
    if not Path(base_path).exists() and cfg["model"].get("tiny"):
        raise ReplicaInputError(f"{base_path}: the run's tiny base model is gone from the cache; rerun train.py to rebuild it")
    quant = cfg["quant"] if quantized else {**cfg["quant"], "mode": "none"}
    base = load_base_model(base_path, cfg["model"], quant, device)
    ensure_embedding_rows(base, tokenizer)
    base.config.pad_token_id = tokenizer.pad_token_id
    model = PeftModel.from_pretrained(base, info.adapter_dir)
    model.eval()
    formatter = ChatFormatter(tokenizer, info.meta["format"], RoleTokens(**info.meta["role_tokens"]), info.meta["max_length"])
    return model, formatter, info
