"""Label fidelity: does the replica write to each relationship the way the user does?

For each pair of labels (a, b) with enough training replies of both, a classifier (the discriminator's character
n-grams + stylometry) learns the user's REAL replies to a from those to b (train split). The replica then answers
every held-out context of a or b twice, once addressed to a and once to b, with the same seed, so the context
cannot give the label away: fidelity is the share of those replies the classifier puts under the label they were
generated for (0.5 = the label changes nothing, 1 = always the right style). The classifier's balanced accuracy
on the real held-out replies of a and b is the ceiling. `own_context` is the same classifier on the replies written
under each context's own label: what the context and the label together reveal (the ablation's reference point).
Intervals resample the held-out contexts (one set of draws for every pair and the mean).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import numpy as np

from replica.evaluation.intervals import (
    Statistic,
    confidence_interval,
    draws,
    point_estimate,
    weighted_ratio,
)


@dataclass(frozen=True, slots=True)
class FidelityPlan:
    """Which labels are compared and which held-out examples' contexts are answered under each of them."""

    labels: list[str]  # labels with enough training replies and at least one held-out example, most replies first
    pairs: list[tuple[str, str]]
    contexts: list[int]  # indices of the held-out examples whose label is one of `labels`


def plan_fidelity(train_replies: Mapping[str, Sequence[str]], examples: Sequence[dict], min_train: int) -> FidelityPlan | None:
    """The labels, pairs and contexts to measure; None when fewer than two labels qualify."""
    held_out = {example.get("relationship") for example in examples}
    labels = sorted((label for label, replies in train_replies.items() if len(replies) >= min_train and label in held_out),
                    key=lambda label: (-len(train_replies[label]), label))
    if len(labels) < 2:
        return None
    contexts = [index for index, example in enumerate(examples) if example.get("relationship") in labels]
    return FidelityPlan(labels, list(combinations(labels, 2)), contexts)


def generate_under_labels(
    engine, examples: Sequence[dict], plan: FidelityPlan, sampling, samples: int, batch_size: int
) -> dict[str, list[list[str]]]:
    """label -> per planned context, `samples` replies addressed to that label (the same seeds for every label)."""
    from replica.inference.generation import ReplySet, generate_reply_sets

    chosen = [examples[index] for index in plan.contexts for _ in range(samples)]
    contexts = [example["context"] for example in chosen]
    sets = [ReplySet(contexts, sampling, [(label, bool(example.get("group", False))) for example in chosen])
            for label in plan.labels]
    replies: dict[str, list[list[str]]] = {}
    for label, label_replies in zip(plan.labels, generate_reply_sets(engine, sets, batch_size, progress=True), strict=True):
        texts = [reply.text for reply in label_replies]
        replies[label] = [texts[k * samples : (k + 1) * samples] for k in range(len(plan.contexts))]
    return replies


def fit_pair_classifier(replies_a: Sequence[str], replies_b: Sequence[str], labels: tuple[str, str], seed: int):
    """A classifier of the user's real replies to `labels[0]` vs `labels[1]` (predict() returns the label)."""
    from replica.evaluation.discriminator import reply_classifier

    classifier = reply_classifier(seed)
    classifier.fit([*replies_a, *replies_b], [labels[0]] * len(replies_a) + [labels[1]] * len(replies_b))
    return classifier


def _kept(classifier, groups: Sequence[Sequence[str]], label: str) -> np.ndarray:
    """Per group of replies, the share the classifier puts under `label`."""
    flat = [text for group in groups for text in group]
    hits = np.asarray(classifier.predict(flat)) == label if flat else np.zeros(0, dtype=bool)
    return hits.reshape(len(groups), -1).mean(axis=1)


def _balanced(hits: np.ndarray, is_a: np.ndarray, is_b: np.ndarray) -> Statistic:
    """Mean of the hit rates over a's and over b's examples (each resampled as its example is drawn)."""
    rate_a, rate_b = weighted_ratio(hits * is_a, is_a), weighted_ratio(hits * is_b, is_b)
    return lambda weights: (rate_a(weights) + rate_b(weights)) / 2


def _reported(name: str, statistic: Statistic, n: int, weights: np.ndarray) -> dict[str, Any]:
    return {name: point_estimate(statistic, n), f"{name}_ci": confidence_interval(statistic, weights)}


def score_fidelity(
    plan: FidelityPlan,
    train_replies: Mapping[str, Sequence[str]],
    examples: Sequence[dict],
    generated: Mapping[str, Sequence[Sequence[str]]],
    resamples: int,
    seed: int,
) -> dict[str, Any]:
    """Fidelity, own-context accuracy and ceiling per pair and their means, with bootstrap intervals over contexts.

    `generated[label][k]` are the replies to context `plan.contexts[k]` addressed to `label`."""
    n = len(plan.contexts)
    weights = draws(n, resamples, seed)
    context_labels = np.array([examples[index]["relationship"] for index in plan.contexts])
    targets = [[examples[index]["target"]] for index in plan.contexts]
    pairs: dict[str, dict[str, Any]] = {}
    statistics: dict[str, list[Statistic]] = {"fidelity": [], "own_context": [], "ceiling": []}
    for a, b in plan.pairs:
        classifier = fit_pair_classifier(train_replies[a], train_replies[b], (a, b), seed)
        is_a, is_b = (context_labels == a).astype(float), (context_labels == b).astype(float)
        member = is_a + is_b
        kept_a, kept_b = _kept(classifier, generated[a], a), _kept(classifier, generated[b], b)
        real = np.where(is_a > 0, _kept(classifier, targets, a), _kept(classifier, targets, b))
        pair = {
            "fidelity": weighted_ratio((kept_a + kept_b) / 2 * member, member),
            "own_context": _balanced(np.where(is_a > 0, kept_a, kept_b), is_a, is_b),
            "ceiling": _balanced(real, is_a, is_b),
        }
        pairs[f"{a} vs {b}"] = {
            "contexts": int(member.sum()),
            "train_replies": {a: len(train_replies[a]), b: len(train_replies[b])},
            "label_kept": {a: point_estimate(weighted_ratio(kept_a * member, member), n),
                           b: point_estimate(weighted_ratio(kept_b * member, member), n)},
        }
        for name, statistic in pair.items():
            pairs[f"{a} vs {b}"].update(_reported(name, statistic, n, weights))
            statistics[name].append(statistic)
    mean: dict[str, Any] = {}
    for name, parts in statistics.items():
        mean.update(_reported(name, lambda w, parts=parts: np.mean([part(w) for part in parts], axis=0), n, weights))
    return {"labels": plan.labels, "contexts": n, "pairs": pairs, "mean": mean}


def label_fidelity(
    engine, train_replies: Mapping[str, Sequence[str]], examples: Sequence[dict], sampling, samples: int,
    batch_size: int, min_train: int, resamples: int, seed: int,
) -> dict[str, Any]:
    """metrics.json's `label_fidelity` of `engine`'s replies (a note when fewer than two labels qualify)."""
    in_prompt = engine.formatter.relationship_in_prompt
    plan = plan_fidelity(train_replies, examples, min_train)
    if plan is None:
        return {"in_prompt": in_prompt,
                "note": f"needs two labels with >= {min_train} training replies and a held-out example each"}
    generated = generate_under_labels(engine, examples, plan, sampling, samples, batch_size)
    return {"in_prompt": in_prompt, "samples": samples,
            **score_fidelity(plan, train_replies, examples, generated, resamples, seed)}
