"""Name the llama.cpp pre-tokenizer (`tokenizer.ggml.pre`) that splits text exactly as a Hugging Face tokenizer does, or,
for a byte-fallback tokenizer, how llama.cpp's SentencePiece tokenizer must prefix text to match it."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from replica.errors import ReplicaInputError

TABLE = Path(__file__).with_name("data") / "pretokenizers.json"
BYTE_FALLBACK_TABLE = Path(__file__).with_name("data") / "byte_fallback.json"
STEP_KEYS = {  # the settings of each pre-tokenizer step that change how text is split
    "ByteLevel": ("add_prefix_space", "use_regex"),
    "Digits": ("individual_digits",),
    "Split": ("pattern", "behavior", "invert"),
}
DESCRIBED_KEYS = ("prepend", "content", "replacement", "prepend_scheme", "split")  # shown in a byte-fallback refusal


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


@cache
def byte_fallback_layouts() -> tuple[dict[str, Any], ...]:
    """The byte-fallback layouts llama.cpp reproduces, as (name, normalizer, pre_tokenizer, add_space_prefix, exact)."""
    return tuple(json.loads(BYTE_FALLBACK_TABLE.read_text(encoding="utf-8"))["layouts"])


def byte_fallback_layout(tokenizer_json: dict[str, Any]) -> dict[str, Any]:
    """The layout whose normalizer and pre-tokenizer are exactly this byte-fallback tokenizer's; one clear error if none."""
    shape = (tokenizer_json.get("normalizer"), tokenizer_json.get("pre_tokenizer"))
    for entry in byte_fallback_layouts():
        if (entry["normalizer"], entry["pre_tokenizer"]) == shape:
            return entry
    names = "; ".join(entry["name"] for entry in byte_fallback_layouts())
    raise ReplicaInputError(
        f"unknown tokenizer: its byte-fallback text handling ({_described(shape[0])} normalizer + {_described(shape[1])} "
        f"pre-tokenizer) matches none llama.cpp's SentencePiece tokenizer is known to reproduce ({names}); nothing was written "
        f"(add the layout to {BYTE_FALLBACK_TABLE.name} once a test shows llama.cpp reproduces it)"
    )


def _described(node: Any) -> str:
    """A short form of a normalizer or pre-tokenizer: `[Prepend(prepend=▁), Replace(content=▁)]`, `Metaspace(split=True)`."""
    if not isinstance(node, dict):
        return "none"
    parts = node.get("normalizers", node.get("pretokenizers"))
    if isinstance(parts, list):
        return "[" + ", ".join(_described(part) for part in parts) + "]"
    settings = ", ".join(f"{key}={node[key]}" for key in DESCRIBED_KEYS if key in node)
    return f"{node.get('type')}({settings})" if settings else str(node.get("type"))
