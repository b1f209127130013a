"""Load a finished run for inference: 4-bit (or 16-bit) base model + adapter, tokenizer and chat format."""

from __future__ import annotations

from pathlib import Path

from replica.errors import ReplicaInputError
from replica.run_dir import inspect_run


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
