"""Replica's chat format as a Jinja chat template, for tokenizers that leave the run (merged folders, GGUF files)."""

from __future__ import annotations

from replica.model.formatting import ChatFormatter


def chat_template(formatter: ChatFormatter) -> str | None:
    """A Jinja chat template rendering Replica's format (user = them, assistant = me); None keeps the tokenizer's."""
    tokenizer = formatter.tokenizer
    adds_bos = formatter.prompt_ids([])[:1] == [tokenizer.bos_token_id]
    if formatter.style == "role_tokens":
        me, them, eot = formatter.tokens.me, formatter.tokens.them, formatter.tokens.eot
        turn = f"({me!r} if m['role'] == 'assistant' else {them!r}) + m['content'] + {eot!r}"
        header = f"m['content'] + {eot!r}"
        opener = me
    elif formatter.style == "plain":
        turn = "('A: ' if m['role'] == 'assistant' else 'B: ') + m['content'] + '\\n'"
        header = "'[' + m['content'] + ']\\n'"
        opener = "A:"
    else:
        return None
    # A run trained with relationships reads a system message as its header line ("to: family"), as in training.
    system = ("{%- for m in messages[:1] if m['role'] == 'system' -%}{{ " + header + " }}{%- endfor -%}"
              if formatter.relationship_in_prompt and formatter.labels else "")
    return (
        ("{{ bos_token }}" if adds_bos else "")
        + system
        + "{%- for m in messages if m['role'] != 'system' -%}{{ " + turn + " }}{%- endfor -%}"
        + "{%- if add_generation_prompt -%}{{ " + repr(opener) + " }}{%- endif -%}"
    )
