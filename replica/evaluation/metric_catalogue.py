"""The metrics an evaluation reports: each one's name, kind, better direction and how to read it, and the DeepSeek
notebook project's published values for orientation."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class MetricInfo:
    label: str
    kind: str  # "unit" (in [0, 1]), "percent" (ratio shown as %), "float", "chars" or "count"
    better: str  # "higher", "lower" or "target" (closest to the real replies' value / 100% is best)
    how_to_read: str


METRICS: dict[str, MetricInfo] = {
    "discriminator_auc": MetricInfo(
        "Real-vs-replica discriminator AUC",
        "unit",
        "lower",
        "How well a classifier (character n-grams + stylometric features, 5-fold cross-validated) tells the user's "
        "real held-out replies from this side's sampled replies to the same messages. 0.5 = indistinguishable "
        "from the user, 1.0 = trivially told apart; lower is better down to 0.5 (below 0.5 is noise).",
    ),
    "style_similarity": MetricInfo(
        "Style similarity",
        "unit",
        "higher",
        "1 - mean Jensen-Shannon divergence between sampled and real distributions of length, emoji, "
        "punctuation, capitalization, laughter, elongated words and the user's distinctive words; 1 = same style.",
    ),
    "perplexity": MetricInfo(
        "Perplexity (held-out replies)",
        "float",
        "lower",
        "How surprised the model is by the user's real replies given the conversation; lower is better. "
        "A big drop after fine-tuning means the model learned the user's words and rhythm.",
    ),
    "bertscore_f1": MetricInfo(
        "BERTScore F1 (sampled)",
        "unit",
        "higher",
        "Token-level overlap of contextual embeddings (all-MiniLM-L6-v2, layer 6, no rescaling) between each "
        "generated and real reply; higher is closer in wording and meaning. Blank replies score 0.",
    ),
    "bertscore_f1_greedy": MetricInfo("BERTScore F1 (greedy)", "unit", "higher", "The same on greedy replies."),
    "semantic_similarity": MetricInfo(
        "Semantic similarity (sampled)",
        "unit",
        "higher",
        "Mean cosine similarity of sentence embeddings of generated vs real reply; higher means the reply says "
        "something closer to what the user said. Short chat replies keep this modest even for good models.",
    ),
    "semantic_similarity_greedy": MetricInfo(
        "Semantic similarity (greedy)", "unit", "higher", "The same on greedy replies."
    ),
    "meteor": MetricInfo(
        "METEOR (sampled)",
        "unit",
        "higher",
        "Word alignment with the real reply (exact, then stemmed in the chat's language, then WordNet synonyms "
        "for English when installed); higher is better. Very low for chat is normal: many good replies exist.",
    ),
    "meteor_greedy": MetricInfo("METEOR (greedy)", "unit", "higher", "The same on greedy replies."),
    "prompt_alignment": MetricInfo(
        "Prompt alignment",
        "percent",
        "target",
        "Mean similarity of the generated reply to the message it answers, divided by that of the real reply. "
        "100% is ideal: well above it the model parrots the message, well below it drifts off topic.",
    ),
    "length_ratio": MetricInfo(
        "Length ratio",
        "percent",
        "target",
        "Mean generated reply length / mean real reply length (characters); 100% is ideal.",
    ),
    "distinct_2": MetricInfo(
        "Distinct-2",
        "unit",
        "target",
        "Unique token bigrams (words, emoji, punctuation) / all bigrams, one reply per example (averaged over "
        "the sampling rounds); compare with the real replies' value. Far below it means repetitive replies. "
        "Corpus-level (it depends on how many replies there are): no interval.",
    ),
    "repeated_3gram_rate": MetricInfo(
        "Looping rate (repeated 3-gram)",
        "unit",
        "lower",
        "Fraction of replies repeating some 3-gram: the model going in circles. Lower is better; the real "
        "replies' value is the floor to aim for.",
    ),
    "train_copy_rate": MetricInfo(
        "Training-reply copy rate",
        "unit",
        "lower",
        "Share of replies equal to one of the user's training replies (case and spacing ignored). Compare with "
        "the real replies' value: above it the model recites its training data instead of answering - a privacy "
        "risk too, since those are private messages.",
    ),
    "train_lcs_median": MetricInfo(
        "Longest substring shared with training (median, chars)",
        "chars",
        "lower",
        "For each reply, the longest stretch of characters it shares with any training reply; median over "
        "replies. The real replies' value shows how much a new reply of the user overlaps by chance.",
    ),
    "train_lcs_p95": MetricInfo(
        "Longest substring shared with training (95th pct, chars)",
        "chars",
        "lower",
        "The same, 95th percentile: the long verbatim stretches. Far above the real replies' value = recitation.",
    ),
    "clean_stop_rate": MetricInfo(
        "Clean stop rate",
        "unit",
        "higher",
        "Fraction of sampled replies that ended with end-of-turn within the token budget and did not start "
        "writing the other person's turn; higher is better.",
    ),
    "pii_leaks": MetricInfo(
        "PII leaks",
        "count",
        "lower",
        "Generated replies (sampled and greedy) containing a personal value that was masked out of the training "
        "data; must be 0. A count, not an estimate: no interval.",
    ),
}


def metric_label(key: str) -> str:
    """Readable name of a metric key, also for keys outside METRICS ("style_features.length")."""
    if key in METRICS:
        return METRICS[key].label
    if key.startswith("style_features."):
        return f"Style feature: {key.split('.', 1)[1].replace('_', ' ')}"
    return key.replace("_", " ").replace(".", ": ")


DEEPSEEK_NOTEBOOK_REFERENCE: dict[str, tuple[float, float]] = {
    "perplexity": (9286.86, 17.99),
    "bertscore_f1": (0.275, 0.414),
    "semantic_similarity": (0.22, 0.285),
    "prompt_alignment": (2.60, 1.04),
}
"""Published baseline -> fine-tuned values of the DeepSeek notebook project, shown for orientation only."""
