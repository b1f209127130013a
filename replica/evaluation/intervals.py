"""Bootstrap intervals over held-out examples, and the paired bootstrap that decides whether a change is real.

A metric is a `Statistic`: a function of example weights (how many times each held-out example is drawn; all ones
for the point estimate). Resampling examples with replacement is then a multinomial draw of those weights, and the
same draws serve both sides, so the paired bootstrap compares the two sides on exactly the same examples.
A statistic takes a (resamples, examples) weight matrix and returns one value per row, vectorized where it can.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

Statistic = Callable[[np.ndarray], np.ndarray]
LEVEL = 0.95


def per_row(function: Callable[[np.ndarray], float]) -> Statistic:
    """A statistic from a function of one weight vector, applied row by row."""
    return lambda weights: np.array([function(row) for row in weights], dtype=float)


def weighted_mean(values: Sequence[float]) -> Statistic:
    """Mean of one value per example."""
    array = np.asarray(values, dtype=float)
    return lambda weights: weights @ array / weights.sum(axis=1)


def weighted_ratio(numerators: Sequence[float], denominators: Sequence[float]) -> Statistic:
    """sum(numerator) / sum(denominator) over the drawn examples (NaN where the denominator sums to <= 0)."""
    top, bottom = np.asarray(numerators, dtype=float), np.asarray(denominators, dtype=float)

    def ratio(weights: np.ndarray) -> np.ndarray:
        below = weights @ bottom
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(below > 0, (weights @ top) / np.where(below > 0, below, 1), np.nan)

    return ratio


def weighted_percentile(values_per_example: Sequence[Sequence[float]], q: float) -> Statistic:
    """The q-th percentile of all values, each example's values repeated as often as the example is drawn."""
    flat = np.asarray([value for values in values_per_example for value in values], dtype=float)
    owner = np.asarray([index for index, values in enumerate(values_per_example) for _ in values], dtype=int)

    def percentile(row: np.ndarray) -> float:
        repeated = np.repeat(flat, row[owner])
        return float(np.percentile(repeated, q)) if repeated.size else float("nan")

    return per_row(percentile)


def draws(n_examples: int, resamples: int, seed: int) -> np.ndarray:
    """(resamples, n_examples) weights: each row counts how often each example is drawn in one resample."""
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, n_examples, size=(resamples, n_examples))
    return np.stack([np.bincount(row, minlength=n_examples) for row in picks])


def _interval(values: np.ndarray) -> list[float] | None:
    finite = values[np.isfinite(values)]
    if finite.size < len(values) * 0.9:  # undefined on too many resamples (e.g. a ratio over zero)
        return None
    tail = (1 - LEVEL) / 2 * 100
    low, high = np.percentile(finite, [tail, 100 - tail])
    return [float(low), float(high)]


def point_estimate(statistic: Statistic, n_examples: int) -> float:
    return float(statistic(np.ones((1, n_examples), dtype=int))[0])


def confidence_interval(statistic: Statistic, weights: np.ndarray) -> list[float] | None:
    """95% percentile interval of `statistic` over the bootstrap `weights` (None when mostly undefined)."""
    return _interval(np.asarray(statistic(weights), dtype=float))


@dataclass(frozen=True, slots=True)
class Difference:
    delta: float  # fine-tuned - baseline on all examples
    ci: list[float] | None  # paired-bootstrap 95% interval of the difference
    significant: bool  # the interval excludes 0

    def to_json(self) -> dict:
        return {"delta": self.delta, "ci": self.ci, "significant": self.significant}


def paired_difference(baseline: Statistic, finetuned: Statistic, weights: np.ndarray) -> Difference:
    """Fine-tuned minus baseline, with the interval of that difference over the same resampled examples."""
    n_examples = weights.shape[1]
    delta = point_estimate(finetuned, n_examples) - point_estimate(baseline, n_examples)
    ci = _interval(np.asarray(finetuned(weights), dtype=float) - np.asarray(baseline(weights), dtype=float))
    return Difference(float(delta), ci, ci is not None and (ci[0] > 0 or ci[1] < 0))
