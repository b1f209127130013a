"""Lexical metrics: language-aware METEOR, distinct-n diversity and n-gram looping."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from replica.evaluation.text import require_pairs, tokens

SNOWBALL_LANGUAGES = {
    "ar": "arabic",
    "da": "danish",
    "de": "german",
    "en": "english",
    "es": "spanish",
    "fi": "finnish",
    "fr": "french",
    "hu": "hungarian",
    "it": "italian",
    "nb": "norwegian",
    "nl": "dutch",
    "nn": "norwegian",
    "no": "norwegian",
    "pt": "portuguese",
    "ro": "romanian",
    "ru": "russian",
    "sv": "swedish",
}


@dataclass(frozen=True, slots=True)
class MeteorResult:
    score: float  # mean of `scores`
    synonyms: bool  # True when WordNet synonym matching was used (English examples only)
    scores: tuple[float, ...] = ()  # one per prediction


class _NoSynonyms:
    """Stands in for the WordNet reader in nltk's METEOR: no synsets, so only the exact and stem stages match."""

    def synsets(self, word: str) -> list:
        return []


def wordnet_available() -> bool:
    """Whether the WordNet corpus is installed locally (never downloaded)."""
    import nltk

    try:
        nltk.data.find("corpora/wordnet")
    except LookupError:
        try:
            nltk.data.find("corpora/wordnet.zip")
        except LookupError:
            return False
    return True


@lru_cache(maxsize=None)
def _stemmer(language: str | None):
    """Snowball stemmer for an ISO 639-1 code ("it", "pt-br"); Porter (nltk's METEOR default) when unknown."""
    from nltk.stem.porter import PorterStemmer
    from nltk.stem.snowball import SnowballStemmer

    name = SNOWBALL_LANGUAGES.get((language or "").split("-")[0].lower())
    return SnowballStemmer(name) if name else PorterStemmer()


def meteor(
    predictions: Sequence[str], references: Sequence[str], languages: Sequence[str | None] | None = None
) -> MeteorResult:
    """Mean sentence METEOR of each prediction against its reference, stemming in each example's language.

    Matching stages are nltk's: exact, then stem (Snowball for the example's language), then WordNet synonyms.
    WordNet is English, so synonyms are used only for English examples and only when the corpus is installed;
    otherwise a reader without synsets is passed in and METEOR runs on the exact + stem stages alone.
    An empty prediction or reference scores 0.
    """
    from nltk.translate.meteor_score import single_meteor_score

    require_pairs(predictions, references)
    if languages is None:
        languages = [None] * len(predictions)
    elif len(languages) != len(predictions):
        raise ValueError(f"{len(languages)} languages for {len(predictions)} predictions")
    if not predictions:
        return MeteorResult(0.0, False)

    english_wordnet = None
    if wordnet_available():
        from nltk.corpus import wordnet as english_wordnet
    no_synonyms = _NoSynonyms()
    used_synonyms = False
    scores = []
    for prediction, reference, language in zip(predictions, references, languages):
        hypothesis, reference_tokens = tokens(prediction), tokens(reference)
        if not hypothesis or not reference_tokens:
            scores.append(0.0)
            continue
        is_english = (language or "").split("-")[0].lower() == "en"
        use_wordnet = is_english and english_wordnet is not None
        used_synonyms = used_synonyms or use_wordnet
        scores.append(
            single_meteor_score(
                reference_tokens,
                hypothesis,
                stemmer=_stemmer(language),
                wordnet=english_wordnet if use_wordnet else no_synonyms,
            )
        )
    return MeteorResult(sum(scores) / len(scores), used_synonyms, tuple(scores))


def _ngrams(items: Sequence[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(items[start : start + n]) for start in range(len(items) - n + 1)]


def loops(text: str, n: int = 3) -> bool:
    """Whether some n-gram occurs at least twice in `text` (a sign of generation looping)."""
    return any(count > 1 for count in Counter(_ngrams(tokens(text), n)).values())


def distinct_n_statistic(rounds: Sequence[Sequence[str]], n: int = 2) -> Callable[[np.ndarray], np.ndarray]:
    """Distinct-n as a function of example weights: `rounds[j][i]` is example i's reply in sampling round j.

    Each round (one reply per example, like the real replies) gets its own distinct-n; the rounds are averaged, so
    the value does not fall just because several replies per example were sampled. Under bootstrap weights it is
    the distinct-n of the drawn examples, each counted once.
    """
    per_round = []
    for texts in rounds:
        grams = [Counter(_ngrams(tokens(text), n)) for text in texts]
        vocabulary = {gram: index for index, gram in enumerate(sorted({g for counts in grams for g in counts}))}
        present = np.zeros((len(texts), len(vocabulary)))
        for row, counts in enumerate(grams):
            present[row, [vocabulary[gram] for gram in counts]] = 1
        totals = np.array([sum(counts.values()) for counts in grams], dtype=float)
        per_round.append((present, totals))

    def distinct(weights: np.ndarray) -> np.ndarray:
        # a resample's repeated example adds no new text: count each drawn example once (else duplicates would
        # read as repetition and pull the interval far below the value)
        weights = (np.asarray(weights) > 0).astype(float)
        values = []
        for present, totals in per_round:
            total = weights @ totals
            unique = ((weights @ present) > 0).sum(axis=1)
            values.append(np.divide(unique, total, out=np.zeros_like(total), where=total > 0))
        return np.mean(values, axis=0)

    return distinct
