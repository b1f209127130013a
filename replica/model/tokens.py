"""Role/end-of-turn/pad tokens: reuse reserved rows or spare embedding rows, never silently resize."""

from __future__ import annotations

import logging

from replica.errors import ReplicaInputError
from replica.settings import RoleTokens  # the `model.role_tokens` section, defined once

log = logging.getLogger(__name__)


def add_role_tokens(tokenizer, tokens: RoleTokens, *, need_roles: bool) -> list[str]:
    """Make sure the role tokens (if needed) and a distinct pad exist; return the strings that were added.

    A pad that is missing or doubles as EOS/a role token is replaced by `tokens.pad` when the vocabulary has it,
    else by an existing special token that no prompt or target uses; a new token is added only when there is none.
    """
    wanted = [tokens.me, tokens.them, tokens.eot] if need_roles else []
    vocab = tokenizer.get_vocab()
    taken = {tokenizer.eos_token_id} | {vocab.get(t) for t in wanted}
    pad = None
    if tokenizer.pad_token is None or tokenizer.pad_token_id in taken:
        pad = unused_special_token(tokenizer, tokens.pad, taken) or tokens.pad
        if pad not in vocab:
            wanted.append(pad)
    missing = [t for t in wanted if t not in vocab]
    if missing:
        tokenizer.add_tokens(missing, special_tokens=True)
    if pad is not None:
        tokenizer.pad_token = pad
    if tokenizer.pad_token_id == tokenizer.eos_token_id:
        raise ReplicaInputError(f"model.role_tokens.pad={tokens.pad!r} equals the EOS token: choose another token")
    return missing


def unused_special_token(tokenizer, preferred: str, taken: set[int | None]) -> str | None:
    """`preferred` if the vocabulary has it, else an existing special token no chat turn uses (pad-named first)."""
    vocab = tokenizer.get_vocab()
    if vocab.get(preferred) is not None and vocab[preferred] not in taken:
        return preferred
    in_template = template_text(tokenizer)
    skip = taken | {tokenizer.bos_token_id, tokenizer.eos_token_id}
    candidates = [
        (token_id, added.content)
        for token_id, added in sorted(getattr(tokenizer, "added_tokens_decoder", {}).items())
        if added.special and token_id not in skip and added.content not in in_template
    ]
    named_pad = [content for _, content in candidates if "pad" in content.lower()]
    if named_pad:
        return named_pad[0]
    return candidates[0][1] if candidates else None


def template_text(tokenizer) -> str:
    """A rendered two-turn conversation of the tokenizer's chat template ('' without one)."""
    if not getattr(tokenizer, "chat_template", None):
        return ""
    probe = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]
    try:
        return tokenizer.apply_chat_template(probe, tokenize=False, add_generation_prompt=False)
    except Exception:  # a template may refuse this shape: then nothing is known to be free of it
        return "".join(tokenizer.all_special_tokens)


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
