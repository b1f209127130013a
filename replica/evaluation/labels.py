"""Per relationship label: the style, discriminator, stop and perplexity metrics of both sides on the held-out
examples of each label, for runs trained with `data.relationships`.

A label with at least `relationships.min_examples` held-out examples gets 95% bootstrap intervals (resampling its
own examples) and paired differences; below that its values come without intervals and with a note.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from replica.evaluation.data import Reference
from replica.evaluation.intervals import draws, point_estimate
from replica.evaluation.scoring import differences, label_statistics, summarize


def is_labelled(adapter_meta: Mapping) -> bool:
    """Whether the run was trained with `data.relationships` (older runs and runs without them are not)."""
    data = (adapter_meta.get("config") or {}).get("data") or {}
    return bool(adapter_meta.get("relationships")) and bool(data.get("relationships"))


def label_indices(examples: Sequence[dict]) -> dict[str, list[int]]:
    """label -> indices of its examples, labels with the most examples first (ties by name)."""
    counts = Counter(example.get("relationship") for example in examples if example.get("relationship"))
    ordered = sorted(counts, key=lambda label: (-counts[label], label))
    return {label: [i for i, example in enumerate(examples) if example.get("relationship") == label] for label in ordered}


def per_relationship(
    sides: Mapping[str, Any], reference: Reference, min_examples: int, resamples: int, seed: int
) -> dict[str, dict[str, Any]]:
    """metrics.json's `per_relationship`: {label: {n_examples, baseline, finetuned, difference | note}}."""
    out: dict[str, dict[str, Any]] = {}
    for label, indices in label_indices(reference.examples).items():
        targets = [reference.targets[i] for i in indices]
        statistics = {}
        for side, output in sides.items():
            nll, counts = output.nll
            sampled = [output.replies.sampled[i] for i in indices]
            statistics[side] = label_statistics(sampled, ([nll[i] for i in indices], [counts[i] for i in indices]),
                                                targets, reference.user_vocab, seed)
        n = len(indices)
        entry: dict[str, Any] = {"n_examples": n}
        if n >= min_examples:
            weights = draws(n, resamples, seed)
            entry.update({side: summarize(values, n, weights) for side, values in statistics.items()})
            entry["difference"] = differences(statistics["baseline"], statistics["finetuned"], weights)
        else:
            entry.update({side: {name: point_estimate(statistic, n) for name, statistic in values.items()}
                          for side, values in statistics.items()})
            entry["note"] = f"fewer than {min_examples} held-out examples: values without intervals"
        out[label] = entry
    return out
