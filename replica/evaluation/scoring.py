"""Every metric of one side (or of the real replies) as a bootstrap `Statistic` over the held-out examples, and the
metrics of both sides with their intervals and paired differences.

A side's replies are, per example, one greedy reply (optional) and `samples` sampled ones, generated as
`replica chat` does. Reference-overlap metrics are computed on both; style, diversity, discrimination, copying,
stopping and looping on the sampled replies only (greedy decoding collapses a small model onto a few replies).
An example's value is the mean over its sampled replies, so intervals resample examples, not replies.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from replica.evaluation.intervals import (
    Statistic,
    weighted_mean,
    weighted_percentile,
    weighted_ratio,
)

GREEDY_SUFFIX = "_greedy"


@dataclass
class Replies:
    """One side's replies: `sampled[i]` are the sampled replies to example i, `greedy[i]` its greedy one."""

    sampled: list[list[Any]]  # generation.Reply
    greedy: list[Any] | None

    @property
    def texts(self) -> list[list[str]]:
        return [[reply.text for reply in group] for group in self.sampled]

    @property
    def greedy_texts(self) -> list[str] | None:
        return None if self.greedy is None else [reply.text for reply in self.greedy]


def _per_example(flat: Sequence[float], groups: int) -> np.ndarray:
    """Mean of each example's consecutive `len(flat) // groups` values."""
    return np.asarray(flat, dtype=float).reshape(groups, -1).mean(axis=1)


def overlap_statistics(
    texts: Sequence[Sequence[str]], reference, embedder, metrics_cfg: Mapping, device: str, suffix: str = ""
) -> dict[str, Statistic]:
    """BERTScore F1, METEOR and semantic similarity of replies against the real reply of their example."""
    from replica.evaluation.lexical import meteor
    from replica.evaluation.semantic import bertscore_f1, pair_cosines

    n = len(texts)
    flat = [text for group in texts for text in group]
    per = len(flat) // n
    targets = [target for target in reference.targets for _ in range(per)]
    languages = [language for language in reference.languages for _ in range(per)]
    bertscore = bertscore_f1(
        flat,
        targets,
        model_type=metrics_cfg.get("bertscore_model"),
        num_layers=metrics_cfg.get("bertscore_num_layers", 6),
        device=device,
    )
    return {
        f"bertscore_f1{suffix}": weighted_mean(_per_example(bertscore, n)),
        f"meteor{suffix}": weighted_mean(_per_example(meteor(flat, targets, languages).scores, n)),
        f"semantic_similarity{suffix}": weighted_mean(_per_example(pair_cosines(flat, targets, embedder), n)),
    }


def perplexity_statistic(nll: Sequence[float], tokens: Sequence[int]) -> Statistic:
    """exp(sum NLL / sum tokens) over the drawn examples: token-weighted reply perplexity."""
    ratio = weighted_ratio(nll, tokens)
    return lambda weights: np.exp(np.minimum(ratio(weights), 50.0))


def copy_statistics(texts: Sequence[Sequence[str]], memorization) -> dict[str, Statistic]:
    """Share of replies equal to a training reply, and the median / 95th percentile of the longest common
    substring (characters) with any training reply."""
    copies = [np.mean([memorization.is_copy(text) for text in group]) for group in texts]
    lengths = [[memorization.longest_common_substring(text) for text in group] for group in texts]
    return {
        "train_copy_rate": weighted_mean(copies),
        "train_lcs_median": weighted_percentile(lengths, 50),
        "train_lcs_p95": weighted_percentile(lengths, 95),
    }


def label_statistics(
    sampled: Sequence[Sequence[Any]], perplexity: tuple[Sequence[float], Sequence[int]], targets: Sequence[str],
    user_vocab: Sequence[str], seed: int,
) -> dict[str, Statistic]:
    """Perplexity, clean stops, style similarity and discriminator AUC of sampled replies (`sampled[i]` answers
    `targets[i]`): the metrics also reported per relationship label."""
    from replica.evaluation.discriminator import discriminate
    from replica.evaluation.style import style_similarity_statistic

    texts = [[reply.text for reply in group] for group in sampled]
    return {
        "perplexity": perplexity_statistic(*perplexity),
        "clean_stop_rate": weighted_mean([np.mean([reply.clean_stop for reply in group]) for group in sampled]),
        "style_similarity": style_similarity_statistic(texts, targets, user_vocab),
        "discriminator_auc": discriminate(targets, texts, seed=seed).auc,
    }


def side_statistics(
    replies: Replies,
    perplexity: tuple[Sequence[float], Sequence[int]],
    reference,
    embedder,
    metrics_cfg: Mapping,
    device: str,
    seed: int,
) -> tuple[dict[str, Statistic], dict[str, Any]]:
    """(statistics with intervals, plain values) of one side."""
    from replica.evaluation.lexical import distinct_n, loops
    from replica.evaluation.pii import pii_leak_count
    from replica.evaluation.semantic import pair_cosines
    from replica.evaluation.style import style_similarity

    texts = replies.texts
    n = len(texts)
    per = len(texts[0])
    flat = [text for group in texts for text in group]
    prompts = [prompt for prompt in reference.prompts for _ in range(per)]
    real_alignment = pair_cosines(reference.prompts, reference.targets, embedder)
    statistics: dict[str, Statistic] = {
        **label_statistics(replies.sampled, perplexity, reference.targets, reference.user_vocab, seed),
        **overlap_statistics(texts, reference, embedder, metrics_cfg, device),
        "prompt_alignment": weighted_ratio(_per_example(pair_cosines(prompts, flat, embedder), n), real_alignment),
        "length_ratio": weighted_ratio([np.mean([len(t) for t in group]) for group in texts],
                                       [len(target) for target in reference.targets]),
        "repeated_3gram_rate": weighted_mean([np.mean([loops(text) for text in group]) for group in texts]),
        **copy_statistics(texts, reference.memorization),
    }
    greedy = replies.greedy_texts
    if greedy is not None:
        statistics.update(
            overlap_statistics([[text] for text in greedy], reference, embedder, metrics_cfg, device, GREEDY_SUFFIX)
        )
    values: dict[str, Any] = {
        "distinct_2": distinct_n([[group[j] for group in texts] for j in range(per)]),
        "style_features": style_similarity(flat, reference.targets, reference.user_vocab).per_feature,
        "pii_leaks": None,
    }
    if reference.secrets is not None:
        values["pii_leaks"] = pii_leak_count(flat + (greedy or []), reference.secrets)
    return statistics, values


def real_statistics(reference) -> dict[str, Statistic]:
    """Looping and copying of the real held-out replies: the values to aim for."""
    from replica.evaluation.lexical import loops

    targets = [[target] for target in reference.targets]
    return {
        "repeated_3gram_rate": weighted_mean([float(loops(target)) for target in reference.targets]),
        **copy_statistics(targets, reference.memorization),
    }


def summarize(statistics: Mapping[str, Statistic], n_examples: int, weights) -> dict[str, Any]:
    """Point estimate of every statistic plus its 95% bootstrap interval under `ci`."""
    from replica.evaluation.intervals import confidence_interval, point_estimate

    values: dict[str, Any] = {name: point_estimate(statistic, n_examples) for name, statistic in statistics.items()}
    values["ci"] = {name: confidence_interval(statistic, weights) for name, statistic in statistics.items()}
    return values


def differences(baseline: Mapping[str, Statistic], finetuned: Mapping[str, Statistic], weights) -> dict[str, dict]:
    """Paired-bootstrap difference (fine-tuned - baseline) of every metric both sides have."""
    from replica.evaluation.intervals import paired_difference

    return {
        name: paired_difference(baseline[name], finetuned[name], weights).to_json()
        for name in baseline
        if name in finetuned
    }


def score_sides(
    sides: Mapping[str, Any], reference, embedder, metrics_cfg: Mapping, device: str, resamples: int, seed: int
) -> dict[str, Any]:
    """{baseline, finetuned, real, difference}: each side's metrics (sides.SideOutput), the real replies' values to
    aim for, and the paired differences, all over the same bootstrap draws of the held-out examples."""
    from replica.evaluation.intervals import draws
    from replica.evaluation.lexical import distinct_n

    n_examples = len(reference.examples)
    weights = draws(n_examples, resamples, seed)
    metrics: dict[str, Any] = {}
    statistics: dict[str, dict[str, Statistic]] = {}
    for side, output in sides.items():
        statistics[side], values = side_statistics(output.replies, output.nll, reference, embedder, metrics_cfg, device, seed)
        metrics[side] = {**summarize(statistics[side], n_examples, weights), **values}
    metrics["real"] = {
        **summarize(real_statistics(reference), n_examples, weights),
        "distinct_2": distinct_n([reference.targets]),
    }
    metrics["difference"] = differences(statistics["baseline"], statistics["finetuned"], weights)
    return metrics
