"""What a generation is asked for and what it gives back, whatever the engine: jobs, sampling settings, replies."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from replica.settings import GenerationSection


@dataclass(slots=True)
class Reply:
    text: str  # cleaned reply: cut at end-of-turn / other-role marker / stop string, no special tokens
    raw: str  # everything generated, special tokens included
    token_ids: list[int]
    clean_stop: bool  # ended by end-of-turn/EOS before the token limit, no other-role marker leaked
    finish_reason: str = "stop"  # "stop" (end of turn, marker or stop string), "length", or "cancelled"
    prompt_tokens: int = 0


@dataclass
class Sampling:
    """How one row picks its tokens: the generation block's defaults, but greedy unless `do_sample` is set.

    Greedy means `do_sample=False`, everywhere (the temperature is then not read). Build one from a block with
    `from_block`; the plain constructor is for tests and for the greedy default of a `Job`."""

    max_new_tokens: int = GenerationSection.max_new_tokens
    do_sample: bool = False
    temperature: float = GenerationSection.temperature
    top_p: float = GenerationSection.top_p
    top_k: int = GenerationSection.top_k
    repetition_penalty: float = GenerationSection.repetition_penalty
    seed: int = GenerationSection.seed

    @classmethod
    def from_block(cls, block: GenerationSection, **given: Any) -> Sampling:
        """The sampling block's settings, each one overridden by a `given` value that is not None (a flag given)."""
        settings = {name: getattr(block, name) for name in cls.__dataclass_fields__}
        settings.update({name: value for name, value in given.items() if value is not None})
        return cls(**settings)


@dataclass
class Job:
    """One reply to generate: its context turns, sampling (seed included) and optional streaming hooks."""

    context: Sequence[dict]
    sampling: Sampling = field(default_factory=Sampling)
    stop: Sequence[str] = ()  # extra stop strings (e.g. an OpenAI request's `stop`), cut from the text
    on_text: Callable[[str], None] | None = None  # receives each new piece of the visible reply, in order
    cancelled: Callable[[], bool] | None = None  # polled every step; True ends the row at once
    relationship: str | None = None  # who the reply is to (a run's label); None: no label in the prompt
    group: bool = False


def with_seed(sampling: Sampling, seed: int) -> Sampling:
    return replace(sampling, seed=seed)


class Busy(Exception):
    """The waiting queue is full: the client should retry later."""


class GenerationFailed(Exception):
    """Generating this job's reply raised; the message names only the error type, never the conversation."""


@dataclass(frozen=True)
class Outcome:
    """A served job's reply, and how many requests generated together with it (itself included)."""

    reply: Reply
    batch_size: int
