"""Fold a run's LoRA adapter into its 16-bit base model: in memory (for an export), or as a standalone folder that
loads with plain `AutoModelForCausalLM.from_pretrained(DIR)` (no peft), stops at the end of turn and renders
Replica's chat format through its chat template."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from replica.atomic import replace_dir
from replica.inference.loading import load_run, quiet_loading
from replica.model.chat_template import chat_template
from replica.model.run_dir import RunInfo
from replica.model.run_meta import recorded_generation, write_meta

# replica.json keys copied into the merged folder: the chat format only, never the training config (it names
# the user and their export paths, and a merged folder is meant to be shared); the run's sampling block is added.
FORMAT_KEYS = ("format_version", "format", "end_of_turn", "stop_strings", "role_tokens", "max_length", "base_model",
               "relationship_in_prompt", "relationships")


def merged_model(run_dir: str | Path):
    """(merged model in eval mode, ChatFormatter, RunInfo): base loaded in the run's dtype on CPU, not 4-bit."""
    with quiet_loading():
        peft_model, formatter, info = load_run(run_dir, device="cpu", quantized=False)
        model = peft_model.merge_and_unload()
    model.eval()
    return model, formatter, info


def merge_run(run_dir: str | Path, out: Path, dtype: str) -> Path:
    """Merge the run and write model (`dtype` weights), tokenizer, generation config and replica.json to `out`."""
    from replica.model.base_model import DTYPES

    model, formatter, info = merged_model(run_dir)
    model = model.to(DTYPES[dtype])
    tokenizer = formatter.tokenizer
    vocab = tokenizer.get_vocab()
    stop_ids = formatter.stop_token_ids + [vocab[m] for m in formatter.stop_strings if m in vocab]
    model.generation_config.eos_token_id = sorted(set(stop_ids))
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.config.pad_token_id = tokenizer.pad_token_id
    template = chat_template(formatter)
    if template is not None:
        tokenizer.chat_template = template
    with replace_dir(out, shared=True) as staging:  # a merged model is meant to be shared: not a private 0700 folder
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        write_meta(staging, _merged_meta(info, dtype, formatter))
    return out


def _merged_meta(info: RunInfo, dtype: str, formatter) -> dict:
    """The merged folder's replica.json: the run's chat format and `generation` block (what `replica serve` samples
    with), where it was merged from, no training config."""
    meta = {key: info.meta[key] for key in FORMAT_KEYS if key in info.meta}
    meta["generation"] = asdict(recorded_generation(info.meta))
    meta.update(merged_from_step=info.meta.get("global_step"), dtype=dtype, end_of_turn_id=formatter.end_of_turn_id)
    return meta
