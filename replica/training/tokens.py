"""Role/end-of-turn/pad tokens: reuse reserved rows or spare embedding rows, never silently resize."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from replica.errors import ReplicaInputError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RoleTokens:
    """Strings of the role markers, the end-of-turn marker and the padding token."""

    me: str = "<|me|>"
    them: str = "<|them|>"
    eot: str = "<|eot|>"
    pad: str = "<|pad|>"


def add_role_tokens(tokenizer, tokens: RoleTokens, *, need_roles: bool) -> list[str]:
    """Make sure the role tokens (if needed) and a distinct pad exist; return the strings that were added."""
    wanted = [tokens.me, tokens.them, tokens.eot] if need_roles else []
    vocab = tokenizer.get_vocab()
    pad_is_bad = tokenizer.pad_token is None or tokenizer.pad_token_id in {tokenizer.eos_token_id} | {
        vocab.get(t) for t in wanted
    }
    if pad_is_bad:
        wanted.append(tokens.pad)
    missing = [t for t in wanted if t not in vocab]
    if missing:
        tokenizer.add_tokens(missing, special_tokens=True)
    if pad_is_bad:
        tokenizer.pad_token = tokens.pad
    if tokenizer.pad_token_id == tokenizer.eos_token_id:
        raise ReplicaInputError(f"model.role_tokens.pad={tokens.pad!r} equals the EOS token: choose another token")
    return missing


def ensure_embedding_rows(model, tokenizer) -> bool:
    """Resize embeddings only when the tokenizer outgrew them; return True if a resize happened."""
    rows = model.get_input_embeddings().weight.shape[0]
    if len(tokenizer) <= rows:
        return False
    log.warning(
        "tokenizer has %d tokens but the model only %d embedding rows: resizing (the adapter will then save whole "
        "embedding matrices; set model.role_tokens to reserved tokens of this tokenizer to avoid it)",
        len(tokenizer),
        rows,
    )
    model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    return True
