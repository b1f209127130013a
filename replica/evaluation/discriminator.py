"""Real-vs-replica discriminator: can a classifier tell the user's real held-out replies from generated ones?

For the same held-out contexts, the real replies (label 1) and one side's generated replies (label 0) are scored
by a classifier on character n-grams plus the stylometric features of `style.py`, cross-validated so every reply is
scored by a model that never saw it (folds keep an example's real and generated replies together). The ROC AUC of
those out-of-fold scores is the headline: 0.5 = indistinguishable from the user, 1.0 = trivially told apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from replica.evaluation.style import (
    capitalization,
    elongation,
    laughter,
    punctuation_marks,
)
from replica.evaluation.text import emojis, words

FOLDS = 5
_CAPITALIZATION = ("lowercase", "capitalized", "shouting", "no_letters")
_MARKS = (".", ",", "!", "?", "...", "!!", "??")


def stylometric_features(texts: Sequence[str]) -> np.ndarray:
    """One row per text: log length, words, emoji, punctuation counts, capitalization, laughter, elongation."""
    rows = []
    for text in texts:
        marks = punctuation_marks(text)
        case = capitalization(text)
        rows.append(
            [
                np.log1p(len(text)),
                np.log1p(len(words(text))),
                np.log1p(len(emojis(text))),
                *(marks.count(mark) for mark in _MARKS),
                *(case == name for name in _CAPITALIZATION),
                laughter(text) != ["none"],
                elongation(text) == "elongated",
                text.count("\n"),
            ]
        )
    return np.asarray(rows, dtype=float).reshape(len(texts), -1)


def reply_classifier(seed: int):
    """Character 1-4-gram TF-IDF + scaled stylometric features, balanced logistic regression (unfitted)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline, make_union
    from sklearn.preprocessing import FunctionTransformer, StandardScaler

    features = make_union(
        TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 4), lowercase=False, sublinear_tf=True, min_df=2),
        make_pipeline(FunctionTransformer(stylometric_features), StandardScaler()),
    )
    return make_pipeline(features, LogisticRegression(C=1.0, class_weight="balanced", solver="liblinear", random_state=seed))


@dataclass(frozen=True, slots=True)
class Discrimination:
    """Out-of-fold P(real) of every reply; `owner` is the held-out example each reply answers."""

    scores: np.ndarray
    labels: np.ndarray  # 1 = real reply, 0 = generated
    owner: np.ndarray

    def auc(self, weights: np.ndarray) -> np.ndarray:
        """ROC AUC of each row of example weights (a reply counts as often as its example is drawn).

        AUC = P(score of a real reply > score of a generated one), ties counting half, over weighted pairs.
        """
        reply_weights = np.asarray(weights, dtype=float)[:, self.owner]
        values, group = np.unique(self.scores, return_inverse=True)
        real = np.zeros((len(reply_weights), len(values)))
        fake = np.zeros_like(real)
        for column in range(reply_weights.shape[1]):
            target = real if self.labels[column] == 1 else fake
            target[:, group[column]] += reply_weights[:, column]
        fake_below = np.cumsum(fake, axis=1) - fake
        wins = (real * (fake_below + fake / 2)).sum(axis=1)
        pairs = real.sum(axis=1) * fake.sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(pairs > 0, wins / np.where(pairs > 0, pairs, 1), np.nan)


def discriminate(real: Sequence[str], generated: Sequence[Sequence[str]], seed: int = 0) -> Discrimination:
    """Cross-validated real-vs-generated scores; `generated[i]` are the replies generated for real reply i."""
    from sklearn.model_selection import StratifiedGroupKFold, cross_val_predict

    if len(real) != len(generated):
        raise ValueError(f"{len(generated)} generated groups for {len(real)} real replies")
    texts = list(real) + [text for group in generated for text in group]
    labels = np.array([1] * len(real) + [0] * (len(texts) - len(real)))
    owner = np.array(list(range(len(real))) + [index for index, group in enumerate(generated) for _ in group])
    folds = min(FOLDS, len(real))
    if folds < 2 or len(texts) == len(real):
        return Discrimination(np.full(len(texts), 0.5), labels, owner)
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    scores = cross_val_predict(reply_classifier(seed), texts, labels, groups=owner, cv=splitter, method="predict_proba")
    return Discrimination(scores[:, 1], labels, owner)
