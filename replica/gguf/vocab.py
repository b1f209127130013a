"""The GGUF tokenizer of a replica: tokens, types, stop tokens, and either byte-level BPE merges and pre-tokenizer
(GPT-2 style, `gpt2`) or byte-fallback BPE as SentencePiece scores (Llama 2 / Mistral style, `llama`)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

from gguf import TokenType

from replica.errors import ReplicaInputError
from replica.gguf.pretokenizer import byte_fallback_layout, pretokenizer_name

BYTE_TOKENS = frozenset(f"<0x{byte:02X}>" for byte in range(256))  # byte fallback's tokens, spelled as tokenizers looks them up
ADDED_OPTIONS = ("lstrip", "rstrip", "single_word")  # added-token matching options llama.cpp does not read from a GGUF
BPE_OPTIONS = ("dropout", "ignore_merges", "continuing_subword_prefix", "end_of_word_suffix")  # no SentencePiece equivalent


@dataclass
class GgufVocab:
    """Everything the `tokenizer.*` keys of a GGUF file hold."""

    model: str  # tokenizer.ggml.model: "gpt2" (byte-level BPE) or "llama" (SentencePiece-style byte fallback)
    tokens: list[str]
    types: list[int]
    pre: str
    eos_id: int  # the end-of-turn token: llama.cpp ends generation there
    eos_ids: list[int]  # end-of-turn and the base's EOS, Ollama's `tokenizer.ggml.eos_token_ids`
    bos_id: int | None
    pad_id: int | None
    unk_id: int | None
    add_bos: bool
    chat_template: str | None
    merges: list[str] = field(default_factory=list)  # gpt2: the merge rules
    scores: list[float] = field(default_factory=list)  # llama: merge priority of each token, highest first
    add_space_prefix: bool = False  # llama: a space in front of text at the start and after each special token


def build_vocab(formatter, rows: int, chat_template: str | None) -> GgufVocab:
    """The GGUF vocabulary of `formatter`'s tokenizer, padded with unused tokens to `rows` embedding rows."""
    backend = getattr(formatter.tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise ReplicaInputError("unknown tokenizer: GGUF export needs a fast (tokenizer.json) tokenizer")
    spec = json.loads(backend.to_str())
    model = spec.get("model", {})
    if model.get("type") == "BPE" and model.get("byte_fallback"):
        return _byte_fallback_vocab(formatter, spec, rows, chat_template)
    if model.get("type") != "BPE" or (spec.get("decoder") or {}).get("type") != "ByteLevel":
        raise ReplicaInputError(
            f"unknown tokenizer: GGUF export supports byte-level BPE (GPT-2, Qwen, Llama 3, SmolLM style) and byte-fallback "
            f"BPE (Llama 2, Mistral style) tokenizers, this one is {model.get('type')} with a "
            f"{(spec.get('decoder') or {}).get('type')} decoder; nothing was written"
        )
    pre = pretokenizer_name(spec)
    tokens, types = _token_table(formatter, spec, rows, lambda text: None)
    return _vocab(formatter, chat_template, model="gpt2", tokens=tokens, types=types, pre=pre,
                  merges=[_merge_text(pair) for pair in model.get("merges", [])])


def _byte_fallback_vocab(formatter, spec: dict, rows: int, chat_template: str | None) -> GgufVocab:
    """Byte-fallback BPE as llama.cpp's SentencePiece tokenizer reads it: byte tokens, scores in merge order, prefix space."""
    layout = byte_fallback_layout(spec)
    if not layout["exact"] and formatter.style == "chat_template":
        raise ReplicaInputError(
            f"unknown tokenizer: its {layout['name']} leaves text that follows a special token or starts with a space "
            f"without the ▁ llama.cpp puts there, and a chat_template run tokenizes its rendered template as one text, "
            f"so llama.cpp would not see the training prompts; nothing was written"
        )
    model = spec["model"]
    _check_byte_fallback_model(model)
    _check_added_tokens(spec.get("added_tokens", []), has_normalizer=spec.get("normalizer") is not None)
    unk = formatter.tokenizer.unk_token  # the token written as tokenizer.ggml.unknown_token_id
    tokens, types = _token_table(formatter, spec, rows, lambda text: _fixed_type(text, unk))
    pairs = [_merge_pair(merge) for merge in model.get("merges", [])]
    scores = merge_scores(pairs)
    check_every_split_is_a_merge(pairs, {text for text, kind in zip(tokens, types) if kind == TokenType.NORMAL})
    return _vocab(formatter, chat_template, model="llama", tokens=tokens, types=types, pre="default",
                  scores=[scores.get(text, 0.0) for text in tokens], add_space_prefix=layout["add_space_prefix"])


def _vocab(formatter, chat_template: str | None, **parts) -> GgufVocab:
    """`parts` plus the stop and special tokens, which both kinds of tokenizer write alike."""
    tokenizer = formatter.tokenizer
    eot = formatter.end_of_turn_id
    return GgufVocab(
        **parts,
        eos_id=eot,
        eos_ids=[eot, *[i for i in formatter.stop_token_ids if i != eot]],
        bos_id=tokenizer.bos_token_id,
        pad_id=tokenizer.pad_token_id,
        unk_id=tokenizer.unk_token_id,
        add_bos=adds_bos(formatter),
        chat_template=chat_template,
    )


def _token_table(formatter, spec: dict, rows: int, fixed_type: Callable[[str], TokenType | None]) -> tuple[list[str], list[int]]:
    """Token strings and types for `rows` embedding rows: `fixed_type` when it names one, then added tokens (control
    when special, user-defined otherwise), normal tokens, and unused `[PAD<n>]` rows past the tokenizer."""
    vocab = formatter.tokenizer.get_vocab()
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
            continue
        tokens.append(text)
        if (kind := fixed_type(text)) is not None:
            types.append(kind)
        elif text in added:
            types.append(TokenType.CONTROL if added[text].get("special") else TokenType.USER_DEFINED)
        else:
            types.append(TokenType.NORMAL)
    eot = formatter.end_of_turn_id
    if types[eot] == TokenType.NORMAL:
        types[eot] = TokenType.CONTROL  # end-of-turn must be a control token to end generation
    return tokens, [int(t) for t in types]


def _fixed_type(text: str, unk: str | None) -> TokenType | None:
    """SentencePiece's own token kinds: the 256 `<0xXX>` byte tokens and the unknown token."""
    if text in BYTE_TOKENS:
        return TokenType.BYTE
    return TokenType.UNKNOWN if text == unk else None


def _check_byte_fallback_model(model: dict) -> None:
    """Refuse BPE settings llama.cpp's SentencePiece tokenizer has no equivalent for, and missing byte tokens."""
    problems = [f"{key}={model[key]!r}" for key in BPE_OPTIONS if model.get(key)]
    if missing := len(BYTE_TOKENS - set(model.get("vocab", {}))):
        problems.append(f"{missing} byte tokens missing")
    if problems:
        raise ReplicaInputError(f"unknown tokenizer: byte-fallback BPE with {', '.join(problems)} is not what llama.cpp's "
                                f"SentencePiece tokenizer reproduces; nothing was written")


def _check_added_tokens(added: list[dict], *, has_normalizer: bool) -> None:
    """Refuse added tokens matched in a way llama.cpp does not: with stripping or word bounds, or after normalization."""
    for entry in added:
        options = [key for key in ADDED_OPTIONS if entry.get(key)]
        if has_normalizer and entry.get("normalized"):
            options.append("normalized")
        if options:
            raise ReplicaInputError(f"unknown tokenizer: its added token {entry.get('content')!r} is matched with "
                                    f"{', '.join(options)}, which llama.cpp does not reproduce; nothing was written")


def merge_scores(pairs: list[tuple[str, str]]) -> dict[str, float]:
    """SentencePiece scores that make llama.cpp merge in the tokenizer's order: minus the rank of each token's first merge.

    llama.cpp joins the adjacent pair whose text has the highest score, Hugging Face the pair of lowest rank (both the
    leftmost on a tie); the two orders agree when all merges that make one token are consecutive. (Between two different
    splits of one token present at once, llama.cpp takes the leftmost, Hugging Face the earlier-listed: as SentencePiece
    itself and its Hugging Face conversion.)
    """
    first: dict[str, int] = {}
    previous = None
    for rank, (left, right) in enumerate(pairs):
        merged = left + right
        if merged in first and merged != previous:
            raise ReplicaInputError(f"unknown tokenizer: the merges that make {merged!r} are not consecutive, so no "
                                    f"SentencePiece score orders them as the tokenizer does; nothing was written")
        first.setdefault(merged, rank)
        previous = merged
    return {token: -float(rank) for token, rank in first.items()}


def check_every_split_is_a_merge(pairs: list[tuple[str, str]], normal: set[str]) -> None:
    """Refuse a tokenizer whose merges leave out a split of a token: llama.cpp joins any two adjacent pieces whose text is
    a token, Hugging Face only the listed pairs (SentencePiece conversions list every split, tokenizers' trainer one)."""
    listed = set(pairs)
    for token in normal:
        for cut in range(1, len(token)):
            left, right = token[:cut], token[cut:]
            if _is_piece(left, normal) and _is_piece(right, normal) and (left, right) not in listed:
                raise ReplicaInputError(
                    f"unknown tokenizer: {left!r} + {right!r} spell the token {token!r} but are not one of its merges, and "
                    f"llama.cpp's SentencePiece tokenizer would join them; nothing was written (a byte-fallback tokenizer "
                    f"needs every split of its tokens among its merges, as SentencePiece conversions have)"
                )


def _is_piece(text: str, normal: set[str]) -> bool:
    """Whether llama.cpp's SentencePiece tokenizer can hold `text` as one piece: a single character or a normal token."""
    return len(text) == 1 or text in normal


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


def _merge_pair(pair) -> tuple[str, str]:
    """A merge rule as its two parts (tokenizer.json writes `[left, right]`, older files `"left right"`)."""
    left, right = pair if isinstance(pair, list) else str(pair).split(" ", 1)
    return left, right
