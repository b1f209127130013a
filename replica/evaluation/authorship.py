"""Authorship: would a classifier trained on the user's real messages attribute the generated replies to them?"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

from replica.evaluation.text import words

_MIN_USER_COUNT = 2  # a word the user wrote once is an accident, not a habit


class AuthorshipClassifier:
    """Character n-gram (2-5, within word boundaries, case kept) TF-IDF + class-balanced logistic regression."""

    def __init__(self, *, regularization: float = 10.0) -> None:
        self.regularization = regularization
        self._pipeline = None

    def fit(self, user_texts: Sequence[str], other_texts: Sequence[str], seed: int = 0) -> AuthorshipClassifier:
        """Train user (label 1) against everyone else (label 0)."""
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline

        if not user_texts or not other_texts:
            raise ValueError("the authorship classifier needs texts of the user and of other people")
        self._pipeline = make_pipeline(
            TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), lowercase=False, sublinear_tf=True),
            LogisticRegression(
                C=self.regularization, class_weight="balanced", max_iter=2000, random_state=seed
            ),
        )
        texts = list(user_texts) + list(other_texts)
        labels = [1] * len(user_texts) + [0] * len(other_texts)
        self._pipeline.fit(texts, labels)
        return self

    def p_user(self, texts: Sequence[str]) -> list[float]:
        """Probability that each text was written by the user."""
        if self._pipeline is None:
            raise RuntimeError("call fit() before p_user()")
        if not texts:
            return []
        return [float(p) for p in self._pipeline.predict_proba(list(texts))[:, 1]]


def authorship_score(
    generated: Sequence[str], real_heldout: Sequence[str], classifier: AuthorshipClassifier
) -> dict[str, float]:
    """Mean P(user) of generated and of real held-out replies, and their ratio (1.0 = as user-like as the user)."""
    generated_p = classifier.p_user(generated)
    real_p = classifier.p_user(real_heldout)
    mean_generated = sum(generated_p) / len(generated_p) if generated_p else 0.0
    mean_real = sum(real_p) / len(real_p) if real_p else 0.0
    return {
        "mean_p_user_generated": mean_generated,
        "mean_p_user_real": mean_real,
        "relative": mean_generated / mean_real if mean_real else math.nan,
    }


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
