"""Load a finished run for inference: 4-bit (or 16-bit) base model + adapter, tokenizer and chat format."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from replica.errors import ReplicaInputError
from replica.model.run_dir import RunInfo, inspect_run


def load_run(run_dir: str | Path, *, device: str = "cpu", quantized: bool = True):
    """(PeftModel in eval mode, ChatFormatter, RunInfo) for a finished run; one model serves base and adapter."""
    from peft import PeftModel

    from replica.model.base_model import load_base_model
    from replica.model.gguf_base import ensure_gguf_base, is_gguf_reference
    from replica.model.memory import return_freed_buffers_to_the_system
    from replica.model.tokens import ensure_embedding_rows

    return_freed_buffers_to_the_system()
    info = inspect_run(run_dir)
    cfg = info.config
    formatter = run_formatter(info)
    tokenizer = formatter.tokenizer
    base_path = info.meta["base_model"]
    if not Path(base_path).exists() and cfg["model"].get("tiny"):
        raise ReplicaInputError(f"{base_path}: the run's tiny base model is gone from the cache; rerun train.py to rebuild it")
    if not Path(base_path).exists() and is_gguf_reference(cfg["model"].get("name_or_path")):  # cache cleared: rebuild
        base_path = str(ensure_gguf_base(cfg["model"]["name_or_path"], Path(base_path).parent.parent, cfg["model"]["dtype"]))
    quant = cfg["quant"] if quantized else {**cfg["quant"], "mode": "none"}
    base = load_base_model(base_path, cfg["model"], quant, device)
    ensure_embedding_rows(base, tokenizer)
    base.config.pad_token_id = tokenizer.pad_token_id
    try:
        model = PeftModel.from_pretrained(base, info.adapter_dir)
    except Exception as err:  # e.g. adapter_config.json edited to another rank: size mismatch
        raise _damaged(info, "the adapter", err) from None
    model.eval()
    return model, formatter, info


def formatter_of(tokenizer, meta: dict):
    """The chat format a run (or merged folder) recorded in its replica.json, over `tokenizer`."""
    from replica.model.formatting import ChatFormatter
    from replica.model.tokens import RoleTokens

    return ChatFormatter(tokenizer, meta["format"], RoleTokens(**meta["role_tokens"]), int(meta["max_length"]),
                         relationship_in_prompt=meta.get("relationship_in_prompt", False),
                         labels=meta.get("relationships", ()))


def run_formatter(info: RunInfo):
    """A run's chat formatter from its tokenizer alone (no model loaded)."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(info.adapter_dir)
    except Exception as err:  # a tokenizer file that parses but does not load
        raise _damaged(info, "the tokenizer", err) from None
    return formatter_of(tokenizer, info.meta)


def _damaged(info: RunInfo, what: str, err: Exception) -> ReplicaInputError:
    first = next((line.strip() for line in str(err).splitlines() if line.strip()), type(err).__name__)
    return ReplicaInputError(
        f"damaged run: {what} does not load ({first[:160]}); re-export the adapter by resuming training "
        "(python train.py ckpt_path=<run>/checkpoints/last.ckpt) or retrain",
        path=str(info.adapter_dir),
    )


@contextmanager
def quiet_loading() -> Iterator[None]:
    """Load a model without the libraries' progress bars, info lines and deprecation chatter (not the user's
    business)."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    logging.getLogger("sentence_transformers").setLevel(logging.WARNING)  # "Loading SentenceTransformer model from <path>"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def load_merged(model_dir: str | Path, *, device: str = "cpu"):
    """(model in eval mode, ChatFormatter, replica.json) for a `replica merge` folder; float32 on CPU."""
    import torch
    from transformers import AutoModelForCausalLM

    from replica.model.base_model import DTYPES

    model_dir = Path(model_dir).expanduser()
    formatter, meta = merged_formatter(model_dir)
    dtype = torch.float32 if device == "cpu" else DTYPES[meta.get("dtype", "bfloat16")]
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype).to(device)
    model.eval()
    return model, formatter, meta


def merged_formatter(model_dir: str | Path):
    """(ChatFormatter, replica.json) of a `replica merge` folder, without loading its model."""
    from transformers import AutoTokenizer

    from replica.model.run_meta import META_FILE, read_meta

    model_dir = Path(model_dir).expanduser()
    try:
        meta = read_meta(model_dir)
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        return formatter_of(tokenizer, meta), meta
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ReplicaInputError(f"not a readable merged model ({type(err).__name__}); rerun `replica merge`", path=str(model_dir / META_FILE)) from None
