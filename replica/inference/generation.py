"""Batched reply generation: per-row sampling settings and seeds, stop criteria, optional streaming of each row.

Every caller generates through `generate_jobs` (one batched `generate` call for a list of jobs): `replica chat`,
`replica serve`, evaluate.py and the stop-sequence callback. A row stops at end-of-turn/EOS, at the other role's
marker (a token or a text such as ``\\nB:``), at one of the job's own stop strings, at its token limit, or when its
job is cancelled (a client that went away); its visible text never holds a role marker or a special token.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from replica.inference.stops import StopCheck
from replica.model.formatting import ChatFormatter
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
    """How one row picks its tokens: the generation block's defaults, but greedy unless `do_sample` is set."""

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

    @classmethod
    def for_stop_eval(cls, block: GenerationSection, **given: Any) -> Sampling:
        """Stop-sequence evaluation's settings: the block's, decoding greedily unless `block.stop_eval` is sample."""
        return replace(cls.from_block(block, **given), do_sample=block.stop_eval == "sample")


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


@torch.no_grad()
def generate_replies(
    model,
    formatter: ChatFormatter,
    contexts: Sequence[Sequence[dict]],
    sampling: Sampling = Sampling(),
    batch_size: int = 16,
    progress: bool = False,
    relations: Sequence[tuple[str | None, bool]] | None = None,
) -> list[Reply]:
    """Replies of `model` as "me" to each context, in length-sorted batches; context i samples with seed+i and is
    addressed to `relations[i]` (relationship label, group chat) when given."""
    relations = relations or [(None, False)] * len(contexts)
    jobs = [Job(context, _with_seed(sampling, sampling.seed + index), relationship=label, group=group)
            for index, (context, (label, group)) in enumerate(zip(contexts, relations, strict=True))]
    lengths = [len(formatter.prompt_ids(job.context, job.relationship, job.group)) for job in jobs]
    order = sorted(range(len(jobs)), key=lambda i: lengths[i])
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    if progress:
        from tqdm.auto import tqdm

        batches = tqdm(batches, desc="generating", unit="batch")
    replies: list[Reply | None] = [None] * len(jobs)
    for batch in batches:
        for index, reply in zip(batch, generate_jobs(model, formatter, [jobs[i] for i in batch])):
            replies[index] = reply
    return [r for r in replies if r is not None]


@torch.no_grad()
def generate_jobs(model, formatter: ChatFormatter, jobs: Sequence[Job]) -> list[Reply]:
    """One batched, left-padded, KV-cached `generate` for all `jobs`; each row has its own sampling and stops."""
    from transformers import LogitsProcessorList, StoppingCriteriaList

    if not jobs:
        return []
    tokenizer = formatter.tokenizer
    device = next(p for p in model.parameters()).device
    prompts = [formatter.prompt_ids(job.context, job.relationship, job.group) for job in jobs]
    ids, mask = _left_pad(prompts, tokenizer.pad_token_id)
    rows = _Rows(formatter, jobs, prompt_length=ids.shape[1])
    was_training = model.training
    model.eval()
    try:
        model.generate(
            input_ids=ids.to(device),
            attention_mask=mask.to(device),
            max_new_tokens=max(job.sampling.max_new_tokens for job in jobs),
            eos_token_id=rows.stop_ids,
            pad_token_id=tokenizer.pad_token_id,
            do_sample=False,  # the row sampler below has already picked each row's token
            repetition_penalty=1.0,
            logits_processor=LogitsProcessorList([_RowSampler([job.sampling for job in jobs], device)]),
            stopping_criteria=StoppingCriteriaList([rows]),
            use_cache=True,
        )
    finally:
        model.train(was_training)
    return [rows.reply(row, len(prompt)) for row, prompt in enumerate(prompts)]


def _with_seed(sampling: Sampling, seed: int) -> Sampling:
    return replace(sampling, seed=seed)


def _left_pad(prompts: Sequence[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    longest = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), longest), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), longest), dtype=torch.long)
    for i, prompt in enumerate(prompts):
        ids[i, longest - len(prompt) :] = torch.as_tensor(prompt, dtype=torch.long)
        mask[i, longest - len(prompt) :] = 1
    return ids, mask


class _RowSampler:
    """A logits processor that picks each row's next token with that row's settings and its own seeded generator.

    It returns scores that are -inf everywhere but the picked token, so `generate`'s greedy step takes it.
    """

    def __init__(self, samplings: Sequence[Sampling], device: torch.device) -> None:
        self.samplings = list(samplings)
        self.generators = [
            torch.Generator(device=device).manual_seed(int(s.seed) % 2**63) if s.do_sample else None for s in samplings
        ]

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        picked = torch.empty(scores.shape[0], dtype=torch.long, device=scores.device)
        for row, sampling in enumerate(self.samplings):
            logits = scores[row].float()
            if sampling.repetition_penalty != 1.0:
                seen = input_ids[row].unique()
                previous = logits[seen]
                logits = logits.clone()
                logits[seen] = torch.where(
                    previous > 0, previous / sampling.repetition_penalty, previous * sampling.repetition_penalty
                )
            if not sampling.do_sample:
                picked[row] = logits.argmax()
                continue
            logits = logits / sampling.temperature
            if 0 < sampling.top_k < logits.numel():
                floor = torch.topk(logits, sampling.top_k).values[-1]
                logits = logits.masked_fill(logits < floor, float("-inf"))
            if sampling.top_p < 1.0:
                ordered, positions = torch.sort(logits, descending=True)
                mass_before = ordered.softmax(-1).cumsum(-1) - ordered.softmax(-1)
                drop = mass_before > sampling.top_p  # always keeps the most likely token
                logits = logits.masked_fill(torch.zeros_like(drop).scatter(0, positions, drop), float("-inf"))
            probs = logits.softmax(-1)
            picked[row] = torch.multinomial(probs, 1, generator=self.generators[row])[0]
        out = torch.full_like(scores, float("-inf"))
        out[torch.arange(scores.shape[0], device=scores.device), picked] = 0.0
        return out


class _Rows:
    """Stopping criteria that follow every row: stop ids, text markers, stop strings, limits, cancellation, and
    streaming of each row's visible text (held back while it could still turn into a marker)."""

    def __init__(self, formatter: ChatFormatter, jobs: Sequence[Job], prompt_length: int) -> None:
        tokenizer = formatter.tokenizer
        vocab = tokenizer.get_vocab()
        markers = formatter.stop_strings
        self.stop_ids = formatter.stop_token_ids + [vocab[m] for m in markers if m in vocab]
        self.check = StopCheck.build(formatter.stop_token_ids, markers)
        self.formatter = formatter
        self.jobs = list(jobs)
        self.prompt_length = prompt_length
        self.raw_markers = [m for m in [formatter.end_of_turn, tokenizer.eos_token, *markers] if m and m not in vocab]
        self.tokens: list[list[int]] = [[] for _ in jobs]
        self.body: list[list[int] | None] = [None] * len(jobs)  # set when the row ends: the tokens of its text
        self.reasons: list[str] = ["length"] * len(jobs)
        self.sent: list[str] = [""] * len(jobs)

    def __call__(self, input_ids: torch.LongTensor, scores, **kwargs) -> torch.BoolTensor:
        done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        newest = input_ids[:, -1].tolist()
        for row, job in enumerate(self.jobs):
            if self.body[row] is not None:
                done[row] = True
                continue
            self._advance(row, job, newest[row])
            done[row] = self.body[row] is not None
        return done

    def _advance(self, row: int, job: Job, token: int) -> None:
        tokens = self.tokens[row]
        tokens.append(token)
        if token in self.stop_ids:
            self._end(row, tokens[:-1], "stop")
        elif (cut := self._marker_cut(tokens, job.stop)) is not None:
            self._end(row, tokens[:cut], "stop")
        elif job.cancelled is not None and job.cancelled():
            self._end(row, tokens, "cancelled")
        elif len(tokens) >= job.sampling.max_new_tokens:
            self._end(row, tokens, "length")
        elif job.on_text is not None:
            self._stream(row, job, self._visible(tokens, job.stop), final=False)

    def _marker_cut(self, tokens: list[int], stops: Sequence[str]) -> int | None:
        """How many tokens precede a role marker or stop string that the generated text now holds; None if none."""
        markers = [*self.raw_markers, *stops]
        if not markers:
            return None
        raw = self.formatter.tokenizer.decode(tokens, skip_special_tokens=False)
        positions = [pos for marker in markers if marker and (pos := raw.find(marker)) != -1]
        if not positions:
            return None
        cut = min(positions)
        keep = len(tokens) - 1
        while keep > 0 and len(self.formatter.tokenizer.decode(tokens[:keep], skip_special_tokens=False)) > cut:
            keep -= 1
        return keep

    def _visible(self, tokens: list[int], stops: Sequence[str]) -> str:
        text = self.formatter.clean_reply(self.formatter.tokenizer.decode(tokens, skip_special_tokens=True))
        for stop in stops:
            if stop and (pos := text.find(stop)) != -1:
                text = text[:pos].rstrip()
        return text

    def _end(self, row: int, body: list[int], reason: str) -> None:
        self.body[row] = body
        self.reasons[row] = reason
        job = self.jobs[row]
        if job.on_text is not None:
            self._stream(row, job, self._visible(body, job.stop), final=True)

    def _stream(self, row: int, job: Job, text: str, *, final: bool) -> None:
        if not final:
            hold = max((len(m) for m in [*self.raw_markers, *job.stop] if m), default=1) - 1
            text = text[: len(text) - hold] if hold else text
            text = text.rstrip().rstrip("\ufffd")
        sent = self.sent[row]
        if len(text) > len(sent) and text.startswith(sent):
            job.on_text(text[len(sent) :])
            self.sent[row] = text

    def reply(self, row: int, prompt_tokens: int) -> Reply:
        tokens = self.tokens[row]
        body = self.body[row] if self.body[row] is not None else tokens
        job = self.jobs[row]
        if self.body[row] is None and job.on_text is not None:  # generate() ended the row without asking us
            self._stream(row, job, self._visible(body, job.stop), final=True)
        raw = self.formatter.tokenizer.decode(tokens, skip_special_tokens=False)
        return Reply(
            text=self._visible(body, job.stop),
            raw=raw,
            token_ids=list(tokens),
            clean_stop=self.check.is_clean_stop(tokens, raw, job.sampling.max_new_tokens),
            finish_reason=self.reasons[row],
            prompt_tokens=prompt_tokens,
        )
