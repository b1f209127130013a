"""The GGUF tokenizer of a replica: byte-level BPE tokens, types, merges, pre-tokenizer and its stop tokens."""

from __future__ import annotations

import json
from dataclasses import dataclass

from gguf import TokenType

from replica.errors import ReplicaInputError
from replica.export.pretokenizer import pretokenizer_name


@dataclass
class GgufVocab:
    """Everything the `tokenizer.*` keys of a GGUF file hold."""

    tokens: list[str]
    types: list[int]
    merges: list[str]
    pre: str
    eos_id: int  # the end-of-turn token: llama.cpp ends generation there
    eos_ids: list[int]  # end-of-turn and the base's EOS, Ollama's `tokenizer.ggml.eos_token_ids`
    bos_id: int | None
    pad_id: int | None
    unk_id: int | None
    add_bos: bool
    chat_template: str | None


def build_vocab(formatter, rows: int, chat_template: str | None) -> GgufVocab:
    """The GGUF vocabulary of `formatter`'s tokenizer, padded with unused tokens to `rows` embedding rows."""
    tokenizer = formatter.tokenizer
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise ReplicaInputError("unknown tokenizer: GGUF export needs a fast (tokenizer.json) tokenizer")
    spec = json.loads(backend.to_str())
    model = spec.get("model", {})
    if model.get("type") != "BPE" or model.get("byte_fallback") or (spec.get("decoder") or {}).get("type") != "ByteLevel":
        raise ReplicaInputError(
            f"unknown tokenizer: GGUF export supports byte-level BPE tokenizers (GPT-2, Qwen, Llama 3, SmolLM style), "
            f"this one is {model.get('type')} with a {(spec.get('decoder') or {}).get('type')} decoder; nothing was written"
        )
    pre = pretokenizer_name(spec)
    vocab = tokenizer.get_vocab()
    if len(vocab) > rows:
        raise ReplicaInputError(f"the tokenizer has {len(vocab)} tokens but the model only {rows} embedding rows")
    by_id = {index: text for text, index in vocab.items()}
    added = {entry["content"]: entry for entry in spec.get("added_tokens", [])}
    tokens, types = [], []
    for index in range(rows):
        text = by_id.get(index)
        if text is None:
            tokens.append(f"[PAD{index}]")
            types.append(TokenType.UNUSED)
        elif text in added:
            tokens.append(text)
            types.append(TokenType.CONTROL if added[text].get("special") else TokenType.USER_DEFINED)
        else:
            tokens.append(text)
            types.append(TokenType.NORMAL)
    eot = formatter.end_of_turn_id
    if types[eot] == TokenType.NORMAL:
        types[eot] = TokenType.CONTROL  # end-of-turn must be a control token to end generation
    return GgufVocab(
        tokens=tokens,
        types=[int(t) for t in types],
        merges=[_merge_text(pair) for pair in model.get("merges", [])],
        pre=pre,
        eos_id=eot,
        eos_ids=[eot, *[i for i in formatter.stop_token_ids if i != eot]],
        bos_id=tokenizer.bos_token_id,
        pad_id=tokenizer.pad_token_id,
        unk_id=tokenizer.unk_token_id,
        add_bos=adds_bos(formatter),
        chat_template=chat_template,
    )


def adds_bos(formatter) -> bool:
    """Whether training put a BOS token in front of every prompt (llama.cpp then adds it itself).

    `role_tokens` and `plain` prompts start with BOS when the tokenizer adds one to encoded text; a
    `chat_template` prompt is the rendered template only, so any BOS in it is the template's own text.
    """
    tokenizer = formatter.tokenizer
    if formatter.style == "chat_template" or tokenizer.bos_token_id is None:
        return False
    return tokenizer("a")["input_ids"][:1] == [tokenizer.bos_token_id]


def _merge_text(pair) -> str:
    """A merge rule as GGUF stores it: the two parts joined by one space."""
    return " ".join(pair) if isinstance(pair, list) else str(pair)
