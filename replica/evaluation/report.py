"""Evaluation report: report.md (comparison table + how to read each metric) and PNG plots, written atomically.

`metrics` is {"baseline": {...}, "finetuned": {...}, "meta": {...}} with an optional "real": {...} holding the
same measures on the real held-out replies (distinct-n, looping rate, ...). Nested dicts are flattened to dotted
keys ("style.per_feature.laughter"). Metrics named in METRICS get their own format and reading notes; any other
number is still tabulated.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from replica.atomic import atomic_open, write_text
from replica.errors import ReplicaInputError

LENGTH_PLOT_BINS = 30
LENGTH_PLOT_PERCENTILE = 99  # longer replies are drawn in the last bin so one rambling reply can't squash the rest


@dataclass(frozen=True, slots=True)
class MetricInfo:
    label: str
    kind: str  # "unit" (in [0, 1], plotted), "percent" (ratio shown as %), "float" or "count"
    how_to_read: str


METRICS: dict[str, MetricInfo] = {
    "perplexity": MetricInfo(
        "Perplexity (held-out replies)",
        "float",
        "How surprised the model is by the user's real replies given the conversation; lower is better. "
        "A big drop after fine-tuning means the model learned the user's words and rhythm.",
    ),
    "bertscore_f1": MetricInfo(
        "BERTScore F1",
        "unit",
        "Token-level overlap of contextual embeddings (all-MiniLM-L6-v2, layer 6, no rescaling) between each "
        "generated and real reply; higher is closer in wording and meaning. Blank replies score 0.",
    ),
    "semantic_similarity": MetricInfo(
        "Semantic similarity",
        "unit",
        "Mean cosine similarity of sentence embeddings of generated vs real reply; higher means the reply says "
        "something closer to what the user said. Short chat replies keep this modest even for good models.",
    ),
    "prompt_alignment": MetricInfo(
        "Prompt alignment",
        "percent",
        "Mean similarity of the generated reply to its conversation context, divided by that of the real reply. "
        "100% is ideal: well above it the model parrots the context, well below it drifts off topic.",
    ),
    "meteor": MetricInfo(
        "METEOR",
        "unit",
        "Word alignment with the real reply (exact, then stemmed in the chat's language, then WordNet synonyms "
        "for English when installed); higher is better. Very low for chat is normal: many good replies exist.",
    ),
    "distinct_2": MetricInfo(
        "Distinct-2",
        "unit",
        "Unique token bigrams (words, emoji, punctuation) / all bigrams over all replies; compare with the real "
        "replies' value. Far below it means repetitive, generic replies.",
    ),
    "repeated_3gram_rate": MetricInfo(
        "Looping rate (repeated 3-gram)",
        "unit",
        "Fraction of replies repeating some 3-gram: the model going in circles. Lower is better; the real "
        "replies' value is the floor to aim for.",
    ),
    "style_similarity": MetricInfo(
        "Style similarity",
        "unit",
        "1 - mean Jensen-Shannon divergence between generated and real distributions of length, emoji, "
        "punctuation, capitalization, laughter, elongated words and the user's distinctive words; 1 = same style.",
    ),
    "authorship_p_user": MetricInfo(
        "Authorship P(user)",
        "unit",
        "Mean probability that a character n-gram classifier trained on the user vs their contacts attributes "
        "the generated replies to the user; higher is better.",
    ),
    "authorship_relative": MetricInfo(
        "Authorship relative to real",
        "percent",
        "Authorship P(user) of generated replies divided by that of the real held-out replies; 100% means as "
        "recognisably the user as the user.",
    ),
    "clean_stop_rate": MetricInfo(
        "Clean stop rate",
        "unit",
        "Fraction of replies that ended with end-of-turn within the token budget and did not start writing the "
        "other person's turn; higher is better.",
    ),
    "pii_leaks": MetricInfo(
        "PII leaks",
        "count",
        "Generated replies containing a personal value that was masked out of the training data; must be 0.",
    ),
}

DEEPSEEK_NOTEBOOK_REFERENCE: dict[str, tuple[float, float]] = {
    "perplexity": (9286.86, 17.99),
    "bertscore_f1": (0.275, 0.414),
    "semantic_similarity": (0.22, 0.285),
    "prompt_alignment": (2.60, 1.04),
}
"""Published baseline -> fine-tuned values of the DeepSeek notebook project, shown for orientation only."""


def flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"style": {"score": 1}} -> {"style.score": 1}."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def format_value(key: str, value: Any) -> str:
    if value is None:
        return "–"
    if not _is_number(value):
        return str(value)
    if math.isnan(value):
        return "n/a"
    kind = METRICS[key].kind if key in METRICS else "float"
    if kind == "percent":
        return f"{value:.0%}"
    if kind == "count":
        return f"{value:,.0f}"
    if kind == "unit":
        return f"{value:.3f}"
    return f"{value:,.2f}" if abs(value) >= 10 else f"{value:.3f}"


def format_delta(key: str, baseline: Any, finetuned: Any) -> str:
    if not (_is_number(baseline) and _is_number(finetuned)) or math.isnan(baseline) or math.isnan(finetuned):
        return ""
    delta = finetuned - baseline
    kind = METRICS[key].kind if key in METRICS else "float"
    if kind == "percent":
        return f"{delta * 100:+.0f} pp"
    if kind == "count":
        return f"{delta:+,.0f}"
    return f"{delta:+,.2f}" if abs(delta) >= 10 else f"{delta:+.3f}"


def _table(metrics: Mapping[str, Any], reference: Mapping[str, tuple[float, float]]) -> list[str]:
    baseline, finetuned = flatten(metrics.get("baseline", {})), flatten(metrics.get("finetuned", {}))
    real = flatten(metrics.get("real", {}))
    keys = [key for key in METRICS if key in baseline or key in finetuned]
    keys += sorted(key for key in baseline.keys() | finetuned.keys() if key not in METRICS)
    header = ["metric", "baseline", "fine-tuned", "Δ"] + (["real replies"] if real else []) + ["reference project"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for key in keys:
        row = [
            METRICS[key].label if key in METRICS else key,
            format_value(key, baseline.get(key)),
            format_value(key, finetuned.get(key)),
            format_delta(key, baseline.get(key), finetuned.get(key)),
        ]
        if real:
            row.append(format_value(key, real.get(key)))
        if key in reference:
            before, after = reference[key]
            row.append(f"{format_value(key, before)} → {format_value(key, after)}")
        else:
            row.append("")
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |")
    return lines


def _markdown(metrics: Mapping[str, Any], reference: Mapping[str, tuple[float, float]], plots: list[Path]) -> str:
    lines = ["# Replica evaluation", ""]
    meta = flatten(metrics.get("meta", {}))
    if meta:
        lines += [f"- **{key}**: {value}" for key, value in meta.items()] + [""]
    lines += _table(metrics, reference)
    lines += [
        "",
        "The reference column shows the published baseline → fine-tuned values of the DeepSeek notebook project "
        "for orientation only: different model, data and prompts, so compare directions, not numbers.",
        "",
        "## How to read each metric",
        "",
    ]
    shown = flatten(metrics.get("baseline", {})).keys() | flatten(metrics.get("finetuned", {})).keys()
    lines += [f"- **{info.label}** — {info.how_to_read}" for key, info in METRICS.items() if key in shown]
    if plots:
        lines += ["", "## Plots", ""] + [f"![{plot.stem}]({plot.name})" for plot in plots]
    return "\n".join(lines) + "\n"


def _save(figure, path: Path) -> None:
    """Render a matplotlib Figure to PNG atomically."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure)
    with atomic_open(path, "wb") as handle:
        figure.savefig(handle, format="png", dpi=120, bbox_inches="tight")


def plot_metrics(metrics: Mapping[str, Any], path: Path) -> bool:
    """Grouped bars baseline vs fine-tuned of the [0, 1] metrics; False (nothing written) when there are none."""
    from matplotlib.figure import Figure

    baseline, finetuned = flatten(metrics.get("baseline", {})), flatten(metrics.get("finetuned", {}))
    keys = [
        key
        for key, info in METRICS.items()
        if info.kind == "unit" and _is_number(baseline.get(key)) and _is_number(finetuned.get(key))
    ]
    if not keys:
        return False
    figure = Figure(figsize=(max(6.0, 1.1 * len(keys)), 4.5))
    axes = figure.subplots()
    width = 0.4
    positions = range(len(keys))
    axes.bar([x - width / 2 for x in positions], [baseline[key] for key in keys], width, label="baseline")
    axes.bar([x + width / 2 for x in positions], [finetuned[key] for key in keys], width, label="fine-tuned")
    axes.set_xticks(list(positions), [METRICS[key].label for key in keys], rotation=30, ha="right")
    axes.set_ylim(0, 1)
    axes.set_ylabel("score (0-1)")
    axes.set_title("Baseline vs fine-tuned")
    axes.legend()
    _save(figure, path)
    return True


def plot_lengths(replies: Mapping[str, Sequence[str]], path: Path) -> bool:
    """Overlaid reply-length histograms (characters), e.g. {"real": ..., "baseline": ..., "fine-tuned": ...}."""
    import numpy as np
    from matplotlib.figure import Figure

    lengths = {name: np.array([len(text.strip()) for text in texts]) for name, texts in replies.items() if texts}
    if not lengths:
        return False
    cap = max(1.0, float(np.percentile(np.concatenate(list(lengths.values())), LENGTH_PLOT_PERCENTILE)))
    bins = np.linspace(0, cap, LENGTH_PLOT_BINS + 1)
    figure = Figure(figsize=(7, 4.5))
    axes = figure.subplots()
    for name, values in lengths.items():
        axes.hist(np.minimum(values, cap), bins=bins, density=True, histtype="step", linewidth=1.8, label=name)
    axes.set_xlabel(f"reply length (characters; >= {cap:.0f} drawn in the last bin)")
    axes.set_ylabel("share of replies (density)")
    axes.set_title("Reply lengths")
    axes.legend()
    _save(figure, path)
    return True


def read_loss_curves(loss_csv: Path) -> dict[str, tuple[list[float], list[float]]]:
    """(steps, values) of every column with "loss" in its name in a Lightning CSVLogger metrics.csv.

    A damaged log only costs the plot: unreadable files give no curves, unparseable cells are skipped.
    """
    try:
        with open(loss_csv, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    except FileNotFoundError:
        raise ReplicaInputError(
            "training log not found; pass the metrics.csv written by the run", path=str(loss_csv)
        ) from None
    except (UnicodeDecodeError, csv.Error):
        return {}
    curves: dict[str, tuple[list[float], list[float]]] = {}
    for index, row in enumerate(rows):
        step = _number(row.get("step"), float(index))
        for column, value in row.items():
            number = _number(value, None) if isinstance(column, str) and "loss" in column else None
            if number is not None:
                steps, values = curves.setdefault(column, ([], []))
                steps.append(step)
                values.append(number)
    return curves


def _number(text: object, default: float | None) -> float | None:
    try:
        return float(text) if isinstance(text, str) and text else default
    except ValueError:
        return default


def plot_loss(loss_csv: Path, path: Path) -> bool:
    """Training/validation loss against step; False (nothing written) when the log has no loss values."""
    from matplotlib.figure import Figure

    curves = read_loss_curves(loss_csv)
    if not curves:
        return False
    figure = Figure(figsize=(7, 4.5))
    axes = figure.subplots()
    for name, (steps, values) in sorted(curves.items()):
        axes.plot(steps, values, marker="o" if len(steps) < 30 else None, markersize=3, label=name)
    axes.set_xlabel("step")
    axes.set_ylabel("loss")
    axes.set_title("Training curves")
    axes.legend()
    _save(figure, path)
    return True


def write_report(
    metrics: Mapping[str, Any],
    out_dir: str | Path,
    reference: Mapping[str, tuple[float, float]] = DEEPSEEK_NOTEBOOK_REFERENCE,
    *,
    loss_csv: Path | None = None,
    replies: Mapping[str, Sequence[str]] | None = None,
) -> list[Path]:
    """Write report.md, metrics.png, lengths.png (when `replies` given) and loss.png (when `loss_csv` given).

    `replies` maps a series name ("real", "baseline", "fine-tuned") to its reply texts; only their lengths are
    plotted. Returns the written paths, report.md last.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    plots = []
    if plot_metrics(metrics, out_dir / "metrics.png"):
        plots.append(out_dir / "metrics.png")
    if replies and plot_lengths(replies, out_dir / "lengths.png"):
        plots.append(out_dir / "lengths.png")
    if loss_csv is not None and plot_loss(Path(loss_csv), out_dir / "loss.png"):
        plots.append(out_dir / "loss.png")
    report = out_dir / "report.md"
    write_text(report, _markdown(metrics, reference, plots))
    return plots + [report]
