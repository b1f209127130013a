"""Follow one generated reply token by token, whatever engine picks the tokens: where it stops, what it streams.

A row stops at end-of-turn/EOS, at the other role's marker (a token or a text such as ``\\nB:``), at one of the
job's own stop strings, at its token limit, or when its job is cancelled (a client that went away). Its visible
text never holds a role marker or a special token; a streaming job gets that text piece by piece, held back while
it could still turn into a marker.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from replica.inference.jobs import Job, Reply
from replica.inference.stops import StopCheck


@dataclass(frozen=True)
class StopRules:
    """What ends a row for one formatter: stop token ids, and the markers that exist only as text."""

    formatter: object
    stop_ids: frozenset[int]
    raw_markers: tuple[str, ...]  # end-of-turn/EOS/role markers that are not single tokens of the vocabulary
    check: StopCheck

    @classmethod
    def of(cls, formatter) -> StopRules:
        vocab = formatter.tokenizer.get_vocab()
        markers = formatter.stop_strings
        stop_ids = [*formatter.stop_token_ids, *(vocab[m] for m in markers if m in vocab)]
        raw = [m for m in [formatter.end_of_turn, formatter.tokenizer.eos_token, *markers] if m and m not in vocab]
        return cls(formatter, frozenset(stop_ids), tuple(raw), StopCheck.build(formatter.stop_token_ids, markers))


class Row:
    """One job's generated tokens and its state: running until `advance` returns True."""

    def __init__(self, rules: StopRules, job: Job, prompt_tokens: int) -> None:
        self.rules = rules
        self.job = job
        self.prompt_tokens = prompt_tokens
        self.tokens: list[int] = []
        self.body: list[int] | None = None  # set when the row ends: the tokens of its text
        self.reason = "length"
        self.sent = ""

    @property
    def done(self) -> bool:
        return self.body is not None

    def advance(self, token: int) -> bool:
        """Take the next generated token; True when the row has ended (its reply is ready)."""
        tokens = self.tokens
        tokens.append(int(token))
        if tokens[-1] in self.rules.stop_ids:
            self._end(tokens[:-1], "stop")
        elif (cut := self._marker_cut()) is not None:
            self._end(tokens[:cut], "stop")
        elif self.cancelled():
            self._end(tokens, "cancelled")
        elif len(tokens) >= self.job.sampling.max_new_tokens:
            self._end(tokens, "length")
        elif self.job.on_text is not None:
            self._stream(self._visible(tokens), final=False)
        return self.done

    def cancelled(self) -> bool:
        return self.job.cancelled is not None and self.job.cancelled()

    def cancel(self) -> None:
        """End the row now (its client went away before its next token)."""
        if not self.done:
            self._end(self.tokens, "cancelled")

    def finish(self) -> None:
        """End the row where it is: its engine stopped generating without asking it (a token limit)."""
        if not self.done:
            self._end(self.tokens, "length")

    def _marker_cut(self) -> int | None:
        """How many tokens precede a role marker or stop string that the generated text now holds; None if none."""
        markers = [m for m in (*self.rules.raw_markers, *self.job.stop) if m]
        if not markers:
            return None
        decode = self.rules.formatter.tokenizer.decode
        tokens = self.tokens
        raw = decode(tokens, skip_special_tokens=False)
        positions = [pos for marker in markers if (pos := raw.find(marker)) != -1]
        if not positions:
            return None
        cut = min(positions)
        keep = len(tokens) - 1
        while keep > 0 and len(decode(tokens[:keep], skip_special_tokens=False)) > cut:
            keep -= 1
        return keep

    def _visible(self, tokens: list[int]) -> str:
        formatter = self.rules.formatter
        text = formatter.clean_reply(formatter.tokenizer.decode(tokens, skip_special_tokens=True))
        for stop in self.job.stop:
            if stop and (pos := text.find(stop)) != -1:
                text = text[:pos].rstrip()
        return text

    def _end(self, body: list[int], reason: str) -> None:
        self.body = body
        self.reason = reason
        if self.job.on_text is not None:
            self._stream(self._visible(body), final=True)

    def _stream(self, text: str, *, final: bool) -> None:
        if not final:
            hold = max((len(m) for m in [*self.rules.raw_markers, *self.job.stop] if m), default=1) - 1
            text = text[: len(text) - hold] if hold else text
            text = text.rstrip().rstrip("\ufffd")
        if len(text) > len(self.sent) and text.startswith(self.sent):
            self.job.on_text(text[len(self.sent) :])
            self.sent = text

    def reply(self) -> Reply:
        self.finish()
        tokens = self.tokens
        raw = self.rules.formatter.tokenizer.decode(tokens, skip_special_tokens=False)
        return Reply(
            text=self._visible(self.body or []),
            raw=raw,
            token_ids=list(tokens),
            clean_stop=self.rules.check.is_clean_stop(tokens, raw, self.job.sampling.max_new_tokens),
            finish_reason=self.reason,
            prompt_tokens=self.prompt_tokens,
        )


def rows_for(formatter, jobs: Sequence[Job], prompts: Sequence[Sequence[int]]) -> list[Row]:
    rules = StopRules.of(formatter)
    return [Row(rules, job, len(prompt)) for job, prompt in zip(jobs, prompts, strict=True)]
