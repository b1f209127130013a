"""Name the llama.cpp pre-tokenizer (`tokenizer.ggml.pre`) that splits text exactly as a Hugging Face tokenizer does."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from replica.errors import ReplicaInputError

TABLE = Path(__file__).with_name("data") / "pretokenizers.json"
STEP_KEYS = {  # the settings of each pre-tokenizer step that change how text is split
    "ByteLevel": ("add_prefix_space", "use_regex"),
    "Digits": ("individual_digits",),
    "Split": ("pattern", "behavior", "invert"),
}


@cache
def known_pretokenizers() -> tuple[dict[str, Any], ...]:
    """The table of pre-tokenizers llama.cpp implements, as (name, normalizer, ignore_merges, steps) entries."""
    return tuple(json.loads(TABLE.read_text(encoding="utf-8"))["known"])


def signature(tokenizer_json: dict[str, Any]) -> list[dict[str, Any]]:
    """The pre-tokenizer steps of a tokenizer.json, flattened, keeping only the settings that change the split."""
    node = tokenizer_json.get("pre_tokenizer")
    nodes = node.get("pretokenizers", []) if isinstance(node, dict) and node.get("type") == "Sequence" else [node]
    steps = []
    for step in nodes:
        if not isinstance(step, dict):
            continue
        kind = step.get("type")
        described: dict[str, Any] = {"type": kind}
        for key in STEP_KEYS.get(kind, ()):
            value = step.get(key)
            if key == "pattern" and isinstance(value, dict):
                value = value.get("Regex", value.get("String"))
            described[key] = value
        if kind not in STEP_KEYS:
            described["settings"] = {k: v for k, v in step.items() if k != "type"}
        steps.append(described)
    return steps


def pretokenizer_name(tokenizer_json: dict[str, Any]) -> str:
    """The llama.cpp pre-tokenizer name for this byte-level BPE tokenizer; one clear error if none matches."""
    steps = signature(tokenizer_json)
    ignore_merges = bool(tokenizer_json.get("model", {}).get("ignore_merges", False))
    normalizer = (tokenizer_json.get("normalizer") or {}).get("type")
    for entry in known_pretokenizers():
        if (entry["steps"], entry["normalizer"], entry["ignore_merges"]) == (steps, normalizer, ignore_merges):
            return entry["name"]
    shown = " + ".join([*([f"{normalizer} normalizer"] if normalizer else []), *(step["type"] or "?" for step in steps)])
    names = ", ".join(entry["name"] for entry in known_pretokenizers())
    raise ReplicaInputError(
        f"unknown tokenizer: its normalizer and pre-tokenizer ({shown or 'none'}) matches none llama.cpp is known to reproduce ({names}); "
        f"a GGUF with a guessed one would tokenize differently from training, so nothing was written "
        f"(add the tokenizer to {TABLE.name} once llama.cpp supports it)"
    )
