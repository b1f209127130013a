"""Lexical metrics: language-aware METEOR, distinct-n diversity and n-gram looping."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

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


def distinct_n(rounds: Sequence[Sequence[str]], n: int = 2) -> float:
    """Unique n-grams / all n-grams of each round's texts (n-grams never span two texts), averaged over rounds.

    `rounds[j]` holds one reply per example (sampling round j), like the real replies, so the value does not fall
    just because several replies per example were sampled. A corpus-level measure that depends on how many texts
    there are: it has no per-example value and no bootstrap interval (a resample's repeated texts would read as
    repetition). 0 when there are no n-grams.
    """
    values = []
    for texts in rounds:
        grams = [gram for text in texts for gram in _ngrams(tokens(text), n)]
        values.append(len(set(grams)) / len(grams) if grams else 0.0)
    return sum(values) / len(values) if values else 0.0
