"""The prompt layout of a replica's chat format, read off the training formatter, as an Ollama (Go) TEMPLATE.

The formatter is the single source of truth: the layout is derived from the prompts it builds for probe
conversations, then checked to rebuild those prompts exactly; a format that is not a plain sequence of turns is
refused rather than approximated.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass

from replica.errors import ReplicaInputError
from replica.gguf.vocab import adds_bos

PROBE_MAX_LENGTH = 1 << 20
PROBES = ("Probe text one", "Probe text two", "Probe text three")
ROLES = {"them": "user", "me": "assistant"}  # Replica roles as chat-API roles


PROBE_LABEL = "probelabel"  # stands for the relationship in a run trained with labels


@dataclass(frozen=True)
class TurnLayout:
    """A prompt as `prefix + (open[role] + text + close[role]) per turn + reply_opener` (BOS excluded); a run
    trained with relationships has its header line (`header`, "to: family") in the prefix."""

    prefix: str
    open: dict[str, str]
    close: dict[str, str]
    reply_opener: str
    header: str | None = None

    def render(self, context: Sequence[dict]) -> str:
        """The prompt text for `context` turns ({role: me|them, text})."""
        turns = "".join(self.open[t["role"]] + t["text"] + self.close[t["role"]] for t in context)
        return self.prefix + turns + self.reply_opener


def probe_label(formatter) -> str | None:
    """The label layouts are derived with: one no real label can be, or None for runs without relationships."""
    return PROBE_LABEL if formatter.relationship_in_prompt and formatter.labels else None


def prompt_text(formatter, context: Sequence[dict]) -> str:
    """The formatter's generation prompt for `context` as text, without the BOS token llama.cpp adds itself."""
    tokenizer = formatter.tokenizer
    ids = formatter.prompt_ids(context, probe_label(formatter))
    if adds_bos(formatter):
        ids = ids[1:]
    return tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)


def turn_layout(formatter) -> TurnLayout:
    """Derive the layout from the formatter's prompts, and check it rebuilds them; one clear error otherwise."""
    formatter = copy.copy(formatter)
    formatter.max_length = PROBE_MAX_LENGTH  # probes are never truncated (truncation only drops whole turns)
    one, two = PROBES[:2]
    empty = prompt_text(formatter, [])
    them_only = prompt_text(formatter, [{"role": "them", "text": one}])
    me_only = prompt_text(formatter, [{"role": "them", "text": one}, {"role": "me", "text": two}])
    opener = _common_suffix([empty, them_only, me_only])
    eot = formatter.end_of_turn
    if eot and eot in opener:  # the end-of-turn marker (and the spacing after it) closes the previous turn
        rest = opener[opener.rfind(eot) + len(eot) :]
        opener = rest.lstrip()
    prefix = empty[: len(empty) - len(opener)]
    them_head, them_tail = _split_once(them_only, one, formatter)
    close_them = them_tail[: len(them_tail) - len(opener)]
    open_them = them_head[len(prefix) :]
    between, me_tail = _split_once(me_only[len(them_head) + len(one) :], two, formatter)
    close_me = me_tail[: len(me_tail) - len(opener)]
    open_me = between[len(close_them) :]
    header = formatter.header(probe_label(formatter), False)
    if header is not None and prefix.count(header) != 1:
        raise ReplicaInputError(f"data.format={formatter.style}: the relationship line is not a plain part of the prompt, "
                                "so no Ollama TEMPLATE can reproduce it: train with data.format=role_tokens")
    layout = TurnLayout(prefix, {"them": open_them, "me": open_me}, {"them": close_them, "me": close_me}, opener, header)
    for context in _check_contexts():
        if layout.render(context) != prompt_text(formatter, context):
            raise ReplicaInputError(
                f"data.format={formatter.style}: the prompt is not a plain sequence of turns (the chat template "
                "changes earlier turns), so no Ollama TEMPLATE can reproduce it: train with data.format=role_tokens"
            )
    return layout


def _check_contexts() -> list[list[dict]]:
    one, two, three = PROBES
    return [
        [{"role": "them", "text": one}, {"role": "me", "text": two}, {"role": "them", "text": three}],
        [{"role": "them", "text": two}, {"role": "me", "text": one}, {"role": "them", "text": three}, {"role": "me", "text": two}],
    ]


def _split_once(text: str, probe: str, formatter) -> tuple[str, str]:
    if text.count(probe) != 1:
        raise ReplicaInputError(
            f"data.format={formatter.style}: the prompt does not hold each turn's text verbatim, so no Ollama "
            "TEMPLATE can reproduce it: train with data.format=role_tokens"
        )
    head, tail = text.split(probe)
    return head, tail


def _common_suffix(texts: list[str]) -> str:
    reversed_texts = [t[::-1] for t in texts]
    return os.path.commonprefix(reversed_texts)[::-1]


def ollama_template(layout: TurnLayout) -> str:
    """A Go text/template over Ollama's `.Messages` that renders `layout` (system and tool messages skipped); a
    relationship line comes from the system prompt (`.System`: the Modelfile's SYSTEM, or `/set system`)."""
    def turn(role: str) -> str:
        return _literal(layout.open[role]) + "{{ .Content }}" + _literal(layout.close[role])

    if layout.header is None:
        prefix = _literal(layout.prefix)
    else:
        before, after = layout.prefix.split(layout.header)
        prefix = _literal(before) + "{{ .System }}" + _literal(after)
    return (
        prefix
        + "{{ range .Messages }}"
        + f'{{{{ if eq .Role "{ROLES["me"]}" }}}}' + turn("me")
        + f'{{{{ else if eq .Role "{ROLES["them"]}" }}}}' + turn("them")
        + "{{ end }}{{ end }}"
        + _literal(layout.reply_opener)
    )


def _literal(text: str) -> str:
    """Template text for a literal: as is, or as a Go string constant when it holds template or quote syntax."""
    if "{{" in text or "}}" in text or '"""' in text:
        return "{{ " + json.dumps(text) + " }}"
    return text
