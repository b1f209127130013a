"""The two sides of an evaluation, one loaded PeftModel: its reply NLL, sampled and greedy replies, and probe answers.

The baseline is the same model inside `model.disable_adapter()`, so both sides see the same weights, tokenizer,
chat format, prompts and sampling.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from replica.evaluation.data import Reference
from replica.evaluation.scoring import Replies
from replica.settings import SAMPLING_KEYS, GenerationSection

SIDES = ("baseline", "finetuned")


@contextmanager
def model_side(model, side: str) -> Iterator[Any]:
    """The run's PeftModel as the `baseline` (adapter disabled inside the block) or the `finetuned` model."""
    if side not in SIDES:
        raise ValueError(f"side must be one of {SIDES}, not {side!r}")
    if side == "baseline":
        with model.disable_adapter():
            yield model
    else:
        yield model


Relations = Sequence[tuple[str | None, bool]]  # per example: (relationship label, group chat) its prompt names


def example_relations(examples: Sequence[dict]) -> list[tuple[str | None, bool]]:
    """Each example's own (relationship, group): what the fine-tuned side of a labelled run is prompted with."""
    return [(example.get("relationship"), bool(example.get("group", False))) for example in examples]


def example_nll(
    model, formatter, examples: Sequence[dict], batch_size: int, desc: str = "perplexity",
    relations: Relations | None = None,
) -> tuple[list[float], list[int]]:
    """Per example: summed NLL and count of its reply + end-of-turn tokens (0, 0 when it doesn't fit max_length)."""
    import torch
    from tqdm.auto import tqdm

    from replica.model.batching import PadCollator
    from replica.model.loss import reply_token_nll

    nll, counts = [0.0] * len(examples), [0] * len(examples)
    relations = relations or [(None, False)] * len(examples)
    encoded = [formatter.encode(example["context"], example["target"], label, group)
               for example, (label, group) in zip(examples, relations, strict=True)]
    rows = sorted(
        (
            {"index": index, "input_ids": e.input_ids, "labels": e.labels}
            for index, e in enumerate(encoded)
            if e is not None
        ),
        key=lambda row: len(row["input_ids"]),
    )
    collate = PadCollator(formatter.tokenizer.pad_token_id)
    device = next(model.parameters()).device
    batches = [rows[start : start + batch_size] for start in range(0, len(rows), batch_size)]
    with torch.no_grad():
        for batch in tqdm(batches, desc=desc, unit="batch"):
            tensors = {k: v.to(device) for k, v in collate([{"input_ids": row["input_ids"], "labels": row["labels"]} for row in batch]).items()}
            token_nll, owners = reply_token_nll(model, tensors["input_ids"], tensors["attention_mask"], tensors["labels"])
            summed = torch.zeros(len(batch), dtype=torch.float64).index_add_(0, owners.cpu(), token_nll.double().cpu())
            count = torch.bincount(owners.cpu(), minlength=len(batch))
            for row, row_nll, row_count in zip(batch, summed.tolist(), count.tolist()):
                nll[row["index"]], counts[row["index"]] = row_nll, row_count
    return nll, counts


def decoding_settings(decoding: Mapping):
    """(sampled, greedy) generation settings from the `decoding` section (its nulls already the run's values)."""
    from replica.inference.jobs import Sampling

    block = GenerationSection(**{key: decoding[key] for key in (*SAMPLING_KEYS, "seed")})
    return Sampling.from_block(block, do_sample=True), Sampling.from_block(block, do_sample=False)


@dataclass
class SideOutput:
    """What one side produced: reply NLL per held-out example, its replies, and its answers to each probe."""

    nll: tuple[list[float], list[int]]
    replies: Replies
    probes: list[list[str]]  # per probe prompt: `decoding.samples` sampled answers


def run_side(
    model, engine, side: str, reference: Reference, probes: Sequence[str], decoding: Mapping, batch_size: int,
    labelled: bool = False,
) -> SideOutput:
    """Everything one side is scored on: held-out NLL (a forward pass of `model` in torch), and from `engine` (this
    side's generator) held-out replies and sampled answers to the probes.

    In a `labelled` run the fine-tuned side addresses each example to its own relationship and the probes to the
    run's most common one; the baseline (and every side of an unlabelled run) sees no label."""
    from replica.inference.generation import ReplySet, generate_reply_sets

    formatter = engine.formatter
    samples = decoding["samples"]
    contexts = reference.contexts
    probe_contexts = [[{"role": "them", "text": prompt}] for prompt in probes for _ in range(samples)]
    relations = example_relations(reference.examples) if labelled and side == "finetuned" else None
    probe_relations = [(formatter.addressee(None), False)] * len(probe_contexts) if relations else None
    with model_side(model, side):
        nll = example_nll(model, formatter, reference.examples, batch_size, f"perplexity ({side})", relations)
    sampled, greedy = decoding_settings(decoding)
    sets = [
        ReplySet([context for context in contexts for _ in range(samples)], sampled,
                 None if relations is None else [relation for relation in relations for _ in range(samples)]),
        ReplySet(probe_contexts, sampled, probe_relations),
    ]
    if decoding["greedy"]:
        sets.append(ReplySet(contexts, greedy, relations))
    flat, answers, *greedy_replies = generate_reply_sets(engine, sets, batch_size, progress=True)
    groups = [flat[index * samples : (index + 1) * samples] for index in range(len(contexts))]
    texts = [reply.text for reply in answers]
    return SideOutput(nll, Replies(groups, greedy_replies[0] if greedy_replies else None),
                      [texts[index * samples : (index + 1) * samples] for index in range(len(probes))])
