"""Replies to many contexts through any engine, and the engine behind every caller.

`replica chat`, `replica serve`, evaluate.py and the stop-sequence callback all generate through an `Engine`:
`TransformersEngine` (the loaded PyTorch model, batched `generate`) or `LlamaCppEngine` (the run's GGUF in
llama.cpp, continuous batching). Both take the same `Job`s and give the same `Reply`s: the same prompts (token ids
built by the run's formatter), sampling settings, per-row seeds, stop rules and streaming.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import NamedTuple, Protocol

from replica.inference.jobs import Job, Reply, Sampling, with_seed

Relations = Sequence[tuple[str | None, bool]]  # per context: (relationship label, group chat) its prompt names


class ReplySet(NamedTuple):
    """Contexts to answer with one sampling setting (context i seeded seed+i), addressed to `relations` if given."""

    contexts: Sequence[Sequence[dict]]
    sampling: Sampling
    relations: Relations | None = None


class Engine(Protocol):
    """Generates replies for jobs; `formatter` builds every prompt it is given."""

    name: str  # "transformers" or "llama_cpp"
    formatter: object

    def generate(self, jobs: Sequence[Job], *, batch_size: int = 16, progress: bool = False) -> list[Reply]:
        """One reply per job, in order; at most `batch_size` rows generate at once."""

    def close(self) -> None:
        """Free the engine's threads and memory (its replies stay valid)."""


def generate_replies(
    engine: Engine,
    contexts: Sequence[Sequence[dict]],
    sampling: Sampling = Sampling(),
    batch_size: int = 16,
    progress: bool = False,
    relations: Relations | None = None,
) -> list[Reply]:
    """Replies of `engine` as "me" to each context; context i samples with seed+i and is addressed to
    `relations[i]` (relationship label, group chat) when given."""
    return engine.generate(reply_jobs(contexts, sampling, relations), batch_size=batch_size, progress=progress)


def generate_reply_sets(
    engine: Engine, sets: Sequence[ReplySet], batch_size: int = 16, progress: bool = False
) -> list[list[Reply]]:
    """`generate_replies` for each set, all in one engine call (llama.cpp reads a prompt the sets share once, and
    keeps its slots busy from the first set to the last)."""
    jobs = [reply_jobs(*reply_set) for reply_set in sets]
    flat = engine.generate([job for set_jobs in jobs for job in set_jobs], batch_size=batch_size, progress=progress)
    starts = list(itertools.accumulate((len(set_jobs) for set_jobs in jobs), initial=0))
    return [flat[start:end] for start, end in itertools.pairwise(starts)]


def reply_jobs(contexts: Sequence[Sequence[dict]], sampling: Sampling, relations: Relations | None = None) -> list[Job]:
    """A job per context: context i samples with seed+i and is addressed to `relations[i]` when given."""
    relations = relations or [(None, False)] * len(contexts)
    return [Job(context, with_seed(sampling, sampling.seed + index), relationship=label, group=group)
            for index, (context, (label, group)) in enumerate(zip(contexts, relations, strict=True))]


def progress_bar(total: int, enabled: bool):
    """A tqdm bar over `total` replies, or None."""
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="generating", unit="reply")
