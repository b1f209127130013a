"""Turn dataset examples into token ids + labels: loss only on the reply and its end-of-turn token.

Three formats (`data.format`; `auto`, the default, resolves to one of them with `resolve_format`):
- ``role_tokens``: ``<|them|>text<|eot|><|me|>text<|eot|>…<|me|>`` + reply + ``<|eot|>``;
- ``plain``: the Mistral reference's ``B: text\\nA: text\\n…A:`` + `` reply`` + EOS;
- ``chat_template``: the tokenizer's own chat template, them = user, me = assistant.

Spans are built by construction (prompt ids, then completion ids), so labels never depend on comparing ids
with the pad id.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from replica.errors import ReplicaInputError
from replica.model.tokens import RoleTokens
from replica.settings import DATA_FORMATS

IGNORE_INDEX = -100
AUTO = "auto"  # chat_template when the tokenizer's template ends a turn with a special token it has, else role_tokens
FORMATS = tuple(style for style in DATA_FORMATS if style != AUTO)  # what `auto` resolves to, one of these
PLAIN_ROLE = {"me": "A", "them": "B"}


@dataclass(slots=True)
class Encoded:
    input_ids: list[int]
    labels: list[int]
    context_turns: int  # context turns kept after truncation


class ChatFormatter:
    """Encodes `{context: [{role, text}], target}` examples and builds generation prompts for one format.

    `end_of_turn` is the token that closes the user's reply (always supervised); `stop_strings` are the markers
    that would open another turn: generating one is a leak, never a clean stop.
    """

    def __init__(
        self, tokenizer, style: str, tokens: RoleTokens, max_length: int, *, relationship_in_prompt: bool = False,
        labels: Sequence[str] = (),
    ) -> None:
        if style not in FORMATS:
            raise ReplicaInputError(f"data.format={style!r} is unknown: use one of {', '.join(FORMATS)}")
        self.tokenizer = tokenizer
        self.style = style
        self.tokens = tokens
        self.max_length = max_length
        self.relationship_in_prompt = relationship_in_prompt
        self.labels = list(labels)  # the run's relationship labels, most common first (none for older runs)
        self._bos = [tokenizer.bos_token_id] if _adds_bos(tokenizer) else []
        if style == "role_tokens":
            self.end_of_turn = tokens.eot
            self.stop_strings = [tokens.them, tokens.me]
        elif style == "plain":
            self.end_of_turn = tokenizer.eos_token
            self.stop_strings = ["\nB:", "\nA:"]
        else:
            if not getattr(tokenizer, "chat_template", None):
                raise ReplicaInputError(
                    "data.format=chat_template but this tokenizer has no chat template: use data.format=role_tokens"
                )
            self.end_of_turn = template_end_of_turn(tokenizer)
            self.stop_strings = [self._template_user_opener()]
        self.end_of_turn_id = tokenizer.get_vocab().get(self.end_of_turn)
        if self.end_of_turn_id is None:
            raise ReplicaInputError(f"end-of-turn marker {self.end_of_turn!r} is not a single token of this tokenizer")
        if tokenizer.pad_token_id in (self.end_of_turn_id, tokenizer.eos_token_id):
            raise ReplicaInputError("the pad token equals EOS/end-of-turn: EOS would never be learned")

    @property
    def stop_token_ids(self) -> list[int]:
        ids = {self.end_of_turn_id, self.tokenizer.eos_token_id}
        return sorted(i for i in ids if i is not None)

    def addressee(self, label: str | None) -> str | None:
        """The relationship a reply is generated for (see `choose_relationship`)."""
        return choose_relationship(label, self.labels, self.relationship_in_prompt)

    # ---- encoding -------------------------------------------------------------------------------------
    def encode(self, context: Sequence[dict], target: str, relationship: str | None = None,
               group: bool = False) -> Encoded | None:
        """Token ids + labels for one example; oldest context turns are dropped to fit; None if the reply can't fit."""
        header = self.header(relationship, group)
        if self.style == "chat_template":
            return self._encode_template(context, target, header)
        completion = self._completion_ids(target)
        opening = self._bos + self._header_ids(header)
        if self.max_length - len(opening) - len(self._prompt_tail_ids()) - len(completion) < 0:
            return None
        prompt, turns = self._fitted_prompt(context, self.max_length - len(completion), opening)
        return Encoded(prompt + completion, [IGNORE_INDEX] * len(prompt) + completion, turns)

    def prompt_ids(self, context: Sequence[dict], relationship: str | None = None, group: bool = False) -> list[int]:
        """The generation prompt for `context` (same truncation rule, reserving room for the reply)."""
        header = self.header(relationship, group)
        if self.style == "chat_template":
            return self._template_prompt_ids(context, self.max_length // 2, header)
        return self._fitted_prompt(context, self.max_length // 2, self._bos + self._header_ids(header))[0]

    def header(self, relationship: str | None, group: bool) -> str | None:
        """The line that tells the model who it is talking to ("to: family", "to: group"), if this run uses one."""
        if not self.relationship_in_prompt or not relationship:
            return None
        return f"to: {relationship}" + (" (group chat)" if group and relationship != "group" else "")

    def _header_ids(self, header: str | None) -> list[int]:
        """role_tokens: the header closed by the end-of-turn token before the first role marker; plain: its own
        bracketed first line. Message turns always open with a role marker, so neither reads as a message."""
        if header is None:
            return []
        if self.style == "role_tokens":
            return self._ids(header) + [self.end_of_turn_id]
        return self._ids(f"[{header}]\n")

    def _fitted_prompt(self, context: Sequence[dict], room: int, opening: list[int]) -> tuple[list[int], int]:
        """`opening` (BOS, header) + the newest context turns that fit in `room` tokens + the reply opener."""
        head = self._prompt_tail_ids()
        budget = room - len(opening) - len(head)
        kept: list[list[int]] = []
        for turn in reversed(context):
            ids = self._turn_ids(turn["role"], _spoken(turn))
            if len(ids) > budget:
                break
            kept.append(ids)
            budget -= len(ids)
        return opening + [i for ids in reversed(kept) for i in ids] + head, len(kept)

    def clean_reply(self, text: str) -> str:
        """Cut a decoded generation at the first end-of-turn, EOS or other-role marker."""
        cut = len(text)
        for marker in [self.end_of_turn, self.tokenizer.eos_token, *self.stop_strings]:
            if marker and (pos := text.find(marker)) != -1:
                cut = min(cut, pos)
        return text[:cut].strip()

    def _ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def _turn_ids(self, role: str, text: str) -> list[int]:
        if self.style == "role_tokens":
            marker = self.tokens.me if role == "me" else self.tokens.them
            return self._ids(marker) + self._ids(text) + [self.end_of_turn_id]
        return self._ids(f"{PLAIN_ROLE[role]}: {text}\n")

    def _prompt_tail_ids(self) -> list[int]:
        return self._ids(self.tokens.me if self.style == "role_tokens" else "A:")

    def _completion_ids(self, target: str) -> list[int]:
        text = target if self.style == "role_tokens" else f" {target}"
        return self._ids(text) + [self.end_of_turn_id]

    # ---- chat template --------------------------------------------------------------------------------
    def _messages(self, context: Sequence[dict]) -> list[dict]:
        """Context as alternating user/assistant messages (consecutive same-role turns joined)."""
        out: list[dict] = []
        for turn in context:
            role = "assistant" if turn["role"] == "me" else "user"
            if out and out[-1]["role"] == role:
                out[-1] = {"role": role, "content": out[-1]["content"] + "\n" + _spoken(turn)}
            else:
                out.append({"role": role, "content": _spoken(turn)})
        while out and out[0]["role"] == "assistant":
            out.pop(0)
        return out

    def _render(self, messages: list[dict], generation_prompt: bool, header: str | None = None) -> str:
        if header is not None:  # the header is the system message, in front of whatever context is kept
            messages = [{"role": "system", "content": header}, *messages]
        if not messages:  # transformers refuses empty conversations: system prefix + generation prompt
            probe = [{"role": "user", "content": "USERTEXT"}]
            opened = self.tokenizer.apply_chat_template(probe, tokenize=False, add_generation_prompt=False)
            asked = self.tokenizer.apply_chat_template(probe, tokenize=False, add_generation_prompt=True)
            prefix = opened.split("USERTEXT", 1)[0].removesuffix(self._template_user_opener_raw(opened))
            return prefix + (asked[len(opened):] if generation_prompt else "")
        return self.tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=generation_prompt
        )

    def _template_user_opener(self) -> str:
        """The text that opens the other person's turn in this template (e.g. ``<|im_start|>user``)."""
        rendered = self._render([{"role": "user", "content": "USERTEXT"}], False)
        return self._template_user_opener_raw(rendered).strip()

    def _template_user_opener_raw(self, rendered: str) -> str:
        """The user-turn opener inside `rendered` (a one-user-message rendering), without BOS/system prefix."""
        before = rendered.split("USERTEXT", 1)[0]
        bos = self.tokenizer.bos_token or ""
        before = before.removeprefix(bos)
        # a system block may precede the user turn: keep only the text after its last line break-free opener
        last_special = max(before.rfind(t) for t in self.tokenizer.all_special_tokens) if self.tokenizer.all_special_tokens else -1
        return before[last_special:] if last_special > 0 else before

    def _template_prompt_ids(self, context: Sequence[dict], budget: int, header: str | None) -> list[int]:
        messages = self._messages(context)
        while True:
            prompt = self._ids(self._render(messages, True, header))
            if len(prompt) <= budget or len(messages) <= 1:
                return prompt
            messages = self._messages_without_oldest(messages)

    @staticmethod
    def _messages_without_oldest(messages: list[dict]) -> list[dict]:
        rest = messages[1:]
        while rest and rest[0]["role"] == "assistant":
            rest = rest[1:]
        return rest

    def _encode_template(self, context: Sequence[dict], target: str, header: str | None) -> Encoded | None:
        completion = self._ids(target) + [self.end_of_turn_id]
        messages = self._messages(context)
        while True:
            try:
                prompt = self._ids(self._render(messages, True, header))
            except Exception:  # templates may refuse an empty or assistant-first conversation
                return None
            if len(prompt) + len(completion) <= self.max_length:
                return Encoded(prompt + completion, [IGNORE_INDEX] * len(prompt) + completion, len(messages))
            if not messages:
                return None
            messages = self._messages_without_oldest(messages)


def choose_relationship(label: str | None, labels: Sequence[str], in_prompt: bool) -> str | None:
    """`label` checked against a run's labels (most common first), else the most common one; None when the run's
    prompts name no relationship. An unknown label raises one line listing the valid ones (not the value given,
    which may be a name)."""
    if not in_prompt or not labels:
        if label is not None:
            raise ReplicaInputError("this run was trained without relationship labels in its prompts (data.relationships); "
                                    "leave the relationship out")
        return None
    if label is None:
        return labels[0]
    if label not in labels:
        raise ReplicaInputError(f"unknown relationship label: this run knows {', '.join(labels)}")  # the value may be a name
    return label


def _spoken(turn: Mapping) -> str:
    """A context turn's text, after its speaker's pseudonym in a group chat (`contact_3: text`)."""
    return f"{turn['speaker']}: {turn['text']}" if turn.get("speaker") else turn["text"]


def resolve_format(requested: str, tokenizer) -> str:
    """`data.format` as used: `auto` picks the base's own chat template when it closes turns with a special token."""
    if requested != AUTO:
        return requested
    if not getattr(tokenizer, "chat_template", None):
        return "role_tokens"
    try:
        end = template_end_of_turn(tokenizer)
    except Exception:  # a template that refuses the probe or does not render replies after its prompt
        return "role_tokens"
    specials = {added.content for added in getattr(tokenizer, "added_tokens_decoder", {}).values() if added.special}
    return "chat_template" if end in specials else "role_tokens"


def template_end_of_turn(tokenizer) -> str:
    """The token that closes an assistant turn in the tokenizer's chat template (EOS if nothing follows)."""
    probe = [{"role": "user", "content": "x"}]
    prompt = tokenizer.apply_chat_template(probe, tokenize=False, add_generation_prompt=True)
    full = tokenizer.apply_chat_template(probe + [{"role": "assistant", "content": "REPLY"}], tokenize=False)
    if not full.startswith(prompt) or "REPLY" not in full[len(prompt):]:
        raise ReplicaInputError(
            "this tokenizer's chat template does not render the reply after the generation prompt: "
            "use data.format=role_tokens"
        )
    suffix = full[len(prompt):].split("REPLY", 1)[1]
    ids = tokenizer(suffix, add_special_tokens=False)["input_ids"]
    return tokenizer.convert_ids_to_tokens(ids[0]) if ids else tokenizer.eos_token


def _adds_bos(tokenizer) -> bool:
    """Whether the tokenizer puts BOS in front of encoded text (Llama/Mistral do, Qwen doesn't)."""
    if tokenizer.bos_token_id is None:
        return False
    return tokenizer("a")["input_ids"][:1] == [tokenizer.bos_token_id]
