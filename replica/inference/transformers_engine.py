"""Generation on the loaded PyTorch model: one left-padded, KV-cached `generate` per batch of jobs.

Each row samples with its own settings and seeded generator (a logits processor picks every row's token), and
stops by its own rules (`rows.Row`). The engine for GPUs, and for a run whose model llama.cpp cannot run.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext

import torch

from replica.inference.generation import progress_bar
from replica.inference.jobs import Job, Reply, Sampling
from replica.inference.rows import Row, rows_for


class TransformersEngine:
    """`model` (a PeftModel or a plain causal LM) with `formatter`; `adapter=False` generates with the adapter off."""

    name = "transformers"

    def __init__(self, model, formatter, *, adapter: bool = True) -> None:
        self.model = model
        self.formatter = formatter
        self.adapter = adapter

    def generate(self, jobs: Sequence[Job], *, batch_size: int = 16, progress: bool = False) -> list[Reply]:
        """Replies in length-sorted batches of `batch_size` jobs."""
        lengths = [len(self.formatter.prompt_ids(job.context, job.relationship, job.group)) for job in jobs]
        order = sorted(range(len(jobs)), key=lambda i: lengths[i])
        bar = progress_bar(len(jobs), progress)
        replies: list[Reply | None] = [None] * len(jobs)
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            for index, reply in zip(batch, self.generate_batch([jobs[i] for i in batch])):
                replies[index] = reply
            if bar is not None:
                bar.update(len(batch))
        if bar is not None:
            bar.close()
        return [reply for reply in replies if reply is not None]

    @torch.no_grad()
    def generate_batch(self, jobs: Sequence[Job]) -> list[Reply]:
        """One batched, left-padded, KV-cached `generate` for all `jobs`; each row has its own sampling and stops."""
        from transformers import LogitsProcessorList, StoppingCriteriaList

        if not jobs:
            return []
        formatter, model = self.formatter, self.model
        prompts = [formatter.prompt_ids(job.context, job.relationship, job.group) for job in jobs]
        ids, mask = _left_pad(prompts, formatter.tokenizer.pad_token_id)
        rows = rows_for(formatter, jobs, prompts)
        stopping = _RowStops(rows)
        device = next(p for p in model.parameters()).device
        was_training = model.training
        model.eval()
        try:
            with self._side():
                model.generate(
                    input_ids=ids.to(device),
                    attention_mask=mask.to(device),
                    max_new_tokens=max(job.sampling.max_new_tokens for job in jobs),
                    eos_token_id=sorted(rows[0].rules.stop_ids),
                    pad_token_id=formatter.tokenizer.pad_token_id,
                    do_sample=False,  # the row sampler below has already picked each row's token
                    repetition_penalty=1.0,
                    logits_processor=LogitsProcessorList([_RowSampler([job.sampling for job in jobs], device)]),
                    stopping_criteria=StoppingCriteriaList([stopping]),
                    use_cache=True,
                )
        finally:
            model.train(was_training)
        return [row.reply() for row in rows]

    def _side(self):
        return nullcontext() if self.adapter else self.model.disable_adapter()

    @contextmanager
    def adapter_off(self) -> Iterator[TransformersEngine]:
        """This engine's model with its adapter off, as an engine (the base model's side of an evaluation)."""
        yield TransformersEngine(self.model, self.formatter, adapter=False)

    def close(self) -> None:
        """Nothing to free: the model belongs to its caller."""


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


class _RowStops:
    """Stopping criteria that hand each row's newest token to its `Row` (which decides, streams and records)."""

    def __init__(self, rows: Sequence[Row]) -> None:
        self.rows = list(rows)

    def __call__(self, input_ids: torch.LongTensor, scores, **kwargs) -> torch.BoolTensor:
        newest = input_ids[:, -1].tolist()
        done = [row.done or row.advance(token) for row, token in zip(self.rows, newest)]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)
