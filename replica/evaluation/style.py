"""Stylometry of chat replies and how close the generated style is to the real one.

Each feature turns a list of texts into counts over categories (a distribution); two lists are compared feature
by feature with the Jensen-Shannon divergence in base 2 (0 = same distribution, 1 = disjoint), and
style similarity = 1 - the mean divergence. A feature neither side shows at all (no emoji anywhere, none of the
user's distinctive words) carries no signal and is left out of the mean; one side showing it and the other not
counts as fully different.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from replica.evaluation.text import emojis, words

LENGTH_BUCKETS = ((0, "0"), (5, "1-5"), (15, "6-15"), (30, "16-30"), (60, "31-60"), (120, "61-120"), (250, "121-250"))
EMOJI_COUNT_BUCKETS = ((0, "0"), (1, "1"), (2, "2"), (4, "3-4"))
TOP_EMOJI = 20
_SHOUTING_MIN_LETTERS = 4

_PUNCTUATION = re.compile(r"\.{2,}|…|!{2,}|\?{2,}|[.,!?]")
_PUNCTUATION_NAMES = {"…": "...", ".": ".", ",": ",", "!": "!", "?": "?"}
_LAUGHTER = {
    "haha": re.compile(r"(?:a?h+a+){2,}h*|(?:a+h+){2,}a*"),
    "hehe": re.compile(r"(?:h+e+){2,}h*|(?:e+h+){2,}e*"),
    "lol": re.compile(r"l+o+l+(?:o+l+)*"),
    "xd": re.compile(r"x+d+"),
    "jaja": re.compile(r"(?:j+[ae]+){2,}j*"),
    "mdr": re.compile(r"m+d+r+"),
    "kkk": re.compile(r"k{3,}"),
}
_LAUGHTER_EMOJI = {"😂", "🤣", "😆", "😹"}
_ELONGATED = re.compile(r"([^\W\d_])\1{2,}")


@dataclass(frozen=True, slots=True)
class StyleResult:
    score: float  # in [0, 1]; 1.0 = same distribution on every feature
    per_feature: dict[str, float]  # 1 - JS divergence of each compared feature


def _bucket(value: int, buckets: tuple[tuple[int, str], ...], last: str) -> str:
    return next((name for upper, name in buckets if value <= upper), last)


def length_bucket(text: str) -> str:
    return _bucket(len(text.strip()), LENGTH_BUCKETS, "251+")


def emoji_count_bucket(text: str) -> str:
    return _bucket(len(emojis(text)), EMOJI_COUNT_BUCKETS, "5+")


def punctuation_marks(text: str) -> list[str]:
    """Marks of `text`: . , ! ? and the runs "..." (also …), "!!", "??"; ["none"] when it has none."""
    marks = [
        _PUNCTUATION_NAMES.get(mark) or ("..." if mark[0] == "." else mark[0] * 2)
        for mark in _PUNCTUATION.findall(text)
    ]
    return marks or ["none"]


def capitalization(text: str) -> str:
    """"shouting" (all caps, >= 4 letters), "capitalized" (first letter upper), "lowercase" or "no_letters"."""
    letters = [char for char in text if char.isalpha()]
    if not letters:
        return "no_letters"
    if len(letters) >= _SHOUTING_MIN_LETTERS and all(char.isupper() for char in letters):
        return "shouting"
    return "capitalized" if letters[0].isupper() else "lowercase"


def laughter(text: str) -> list[str]:
    """Laughter families in `text` (haha/ahah, hehe, lol, xd, jaja, mdr, kkk, laugh emoji); ["none"] if no laugh."""
    families = {name for word in words(text) for name, pattern in _LAUGHTER.items() if pattern.fullmatch(word)}
    if _LAUGHTER_EMOJI.intersection(emojis(text)):
        families.add("emoji")
    return sorted(families) or ["none"]


def elongation(text: str) -> str:
    """"elongated" when a word repeats a letter 3+ times (siii, noooo), else "plain"."""
    return "elongated" if _ELONGATED.search(text.lower()) else "plain"


def _per_text(texts: Sequence[str], feature: Callable[[str], str | list[str]]) -> Counter[str]:
    counts: Counter[str] = Counter()
    for text in texts:
        value = feature(text)
        counts.update([value] if isinstance(value, str) else value)
    return counts


def style_profile(texts: Sequence[str], user_vocab: Sequence[str] | None = None) -> dict[str, Counter[str]]:
    """Counts over categories for every stylometric feature of `texts`."""
    profile = {
        "length": _per_text(texts, length_bucket),
        "emoji_count": _per_text(texts, emoji_count_bucket),
        "top_emoji": Counter(emoji for text in texts for emoji in emojis(text)),
        "punctuation": _per_text(texts, punctuation_marks),
        "capitalization": _per_text(texts, capitalization),
        "laughter": _per_text(texts, laughter),
        "elongation": _per_text(texts, elongation),
    }
    if user_vocab:
        vocab = {word.lower() for word in user_vocab}
        used = [[word for word in words(text) if word in vocab] for text in texts]
        profile["user_vocab_rate"] = Counter("uses" if found else "none" for found in used)
        profile["user_vocab_words"] = Counter(word for found in used for word in found)
    return profile


def _top_categories(counts: Counter[str], keep: set[str]) -> Counter[str]:
    """Counts with every category outside `keep` merged into "other"."""
    merged: Counter[str] = Counter()
    for category, count in counts.items():
        merged[category if category in keep else "other"] += count
    return merged


def js_divergence(left: Counter[str], right: Counter[str]) -> float:
    """Jensen-Shannon divergence in base 2 of two count distributions; 1.0 when exactly one is empty."""
    left_total, right_total = sum(left.values()), sum(right.values())
    if not left_total or not right_total:
        return 0.0 if left_total == right_total else 1.0
    divergence = 0.0
    for category in left.keys() | right.keys():
        p, q = left[category] / left_total, right[category] / right_total
        mean = (p + q) / 2
        divergence += (p * math.log2(p / mean) if p else 0.0) + (q * math.log2(q / mean) if q else 0.0)
    return min(1.0, max(0.0, divergence / 2))


def style_similarity(
    generated: Sequence[str], real: Sequence[str], user_vocab: Sequence[str] | None = None
) -> StyleResult:
    """1 - mean JS divergence between the style distributions of generated and real replies."""
    if not generated or not real:
        raise ValueError("style similarity needs at least one generated and one real text")
    generated_profile = style_profile(generated, user_vocab)
    real_profile = style_profile(real, user_vocab)
    real_top = {emoji for emoji, _ in real_profile["top_emoji"].most_common(TOP_EMOJI)}
    generated_profile["top_emoji"] = _top_categories(generated_profile["top_emoji"], real_top)
    real_profile["top_emoji"] = _top_categories(real_profile["top_emoji"], real_top)
    per_feature = {
        name: 1.0 - js_divergence(generated_profile[name], real_profile[name])
        for name in real_profile
        if generated_profile[name] or real_profile[name]
    }
    return StyleResult(sum(per_feature.values()) / len(per_feature), per_feature)


def _count_matrix(groups: Sequence[Sequence[str]], feature: str, user_vocab, categories: list[str]) -> np.ndarray:
    """(examples, categories) counts of one feature, summed over each example's texts."""
    position = {category: index for index, category in enumerate(categories)}
    matrix = np.zeros((len(groups), len(categories)))
    for row, texts in enumerate(groups):
        for category, count in style_profile(texts, user_vocab)[feature].items():
            matrix[row, position.get(category, position.get("other", 0))] += count
    return matrix


def _js_rows(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Row-wise Jensen-Shannon divergence (base 2) of count matrices; 1.0 where exactly one row is empty."""
    left_total, right_total = left.sum(axis=1, keepdims=True), right.sum(axis=1, keepdims=True)
    p = np.divide(left, left_total, out=np.zeros_like(left), where=left_total > 0)
    q = np.divide(right, right_total, out=np.zeros_like(right), where=right_total > 0)
    mean = (p + q) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log2(p / mean), 0.0) + np.where(q > 0, q * np.log2(q / mean), 0.0)
    divergence = np.clip(terms.sum(axis=1) / 2, 0.0, 1.0)
    one_empty = (left_total[:, 0] > 0) != (right_total[:, 0] > 0)
    return np.where(one_empty, 1.0, divergence)


def style_similarity_statistic(
    generated: Sequence[Sequence[str]], real: Sequence[str], user_vocab: Sequence[str] | None = None
) -> Callable[[np.ndarray], np.ndarray]:
    """Style similarity as a function of example weights (for bootstrap intervals); `generated[i]` answers `real[i]`.

    Same definition as `style_similarity`: with all weights 1 both give the same score.
    """
    generated_profile = style_profile([text for group in generated for text in group], user_vocab)
    real_profile = style_profile(real, user_vocab)
    real_top = {emoji for emoji, _ in real_profile["top_emoji"].most_common(TOP_EMOJI)}
    features = [name for name in real_profile if generated_profile[name] or real_profile[name]]
    matrices = {}
    for name in features:
        categories = sorted(set(generated_profile[name]) | set(real_profile[name]))
        if name == "top_emoji":
            categories = sorted(real_top) + ["other"]
        matrices[name] = (
            _count_matrix(generated, name, user_vocab, categories),
            _count_matrix([[text] for text in real], name, user_vocab, categories),
        )

    def similarity(weights: np.ndarray) -> np.ndarray:
        weights = np.asarray(weights, dtype=float)
        divergences = [_js_rows(weights @ left, weights @ right) for left, right in matrices.values()]
        return 1.0 - np.mean(divergences, axis=0) if divergences else np.full(len(weights), np.nan)

    return similarity


_MIN_USER_COUNT = 2  # a word the user wrote once is an accident, not a habit


def distinctive_words(user_texts: Sequence[str], other_texts: Sequence[str], k: int = 50) -> list[str]:
    """The k words most typical of the user vs the others: log-odds ratio with an informative Dirichlet prior.

    Monroe, Colaresi & Quinn (2008), "Fightin' Words"; the prior is the pooled counts of both sides, and words
    are ranked by the z-score of the log-odds difference. Only words the user wrote at least twice qualify.
    """
    user_counts = Counter(word for text in user_texts for word in words(text) if not word.isdigit())
    other_counts = Counter(word for text in other_texts for word in words(text) if not word.isdigit())
    prior = user_counts + other_counts
    if len(prior) < 2:
        return []
    prior_total = sum(prior.values())
    user_total, other_total = sum(user_counts.values()), sum(other_counts.values())

    def log_odds(count: int, total: int, alpha: int) -> float:
        return math.log((count + alpha) / (total + prior_total - count - alpha))

    scores = {}
    for word, count in user_counts.items():
        if count < _MIN_USER_COUNT:
            continue
        alpha = prior[word]
        delta = log_odds(count, user_total, alpha) - log_odds(other_counts[word], other_total, alpha)
        variance = 1 / (count + alpha) + 1 / (other_counts[word] + alpha)
        scores[word] = delta / math.sqrt(variance)
    return sorted(scores, key=lambda word: (-scores[word], word))[:k]
