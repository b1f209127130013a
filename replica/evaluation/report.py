"""Evaluation report: report.md (comparison table, how to read each metric, probes, blind test) and PNG plots.

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
from replica.evaluation.human import human_markdown

LENGTH_PLOT_BINS = 30
LENGTH_PLOT_PERCENTILE = 99  # longer replies are drawn in the last bin so one rambling reply can't squash the rest


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
    if kind == "chars":
        return f"{value:.1f}"
    if kind == "unit":
        return f"{value:.3f}"
    return f"{value:,.2f}" if abs(value) >= 10 else f"{value:.3f}"


def format_delta(key: str, delta: Any) -> str:
    if not _is_number(delta) or math.isnan(delta):
        return ""
    kind = METRICS[key].kind if key in METRICS else "float"
    if kind == "percent":
        return f"{delta * 100:+.0f} pp"
    if kind == "count":
        return f"{delta:+,.0f}"
    if kind == "chars":
        return f"{delta:+.1f}"
    return f"{delta:+,.2f}" if abs(delta) >= 10 else f"{delta:+.3f}"


def with_interval(key: str, value: Any, interval: Any, formatter=format_value) -> str:
    text = formatter(key, value)
    if text and isinstance(interval, Sequence) and len(interval) == 2 and all(map(_is_number, interval)):
        text += f" [{formatter(key, interval[0])}, {formatter(key, interval[1])}]"
    return text


def _side_values(metrics: Mapping[str, Any], side: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(flat metric values without the intervals, intervals by metric) of one side."""
    values = dict(metrics.get(side, {}))
    intervals = values.pop("ci", {}) or {}
    return flatten(values), dict(intervals)


def _table(metrics: Mapping[str, Any], reference: Mapping[str, tuple[float, float]]) -> list[str]:
    (baseline, base_ci), (finetuned, tuned_ci) = _side_values(metrics, "baseline"), _side_values(metrics, "finetuned")
    real, real_ci = _side_values(metrics, "real")
    difference = metrics.get("difference", {})
    keys = [key for key in METRICS if key in baseline or key in finetuned]
    keys += sorted(key for key in baseline.keys() | finetuned.keys() if key not in METRICS)
    header = ["metric", "baseline [95% CI]", "fine-tuned [95% CI]", "Δ [paired 95% CI]", "significant"]
    header += (["real replies"] if real else []) + ["reference project"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for key in keys:
        change = difference.get(key) or {}
        if change:
            delta = with_interval(key, change.get("delta"), change.get("ci"), format_delta)
            significant = "yes" if change.get("significant") else "no"
        else:
            base, tuned = baseline.get(key), finetuned.get(key)
            numbers = _is_number(base) and _is_number(tuned)
            delta, significant = (format_delta(key, tuned - base) if numbers else ""), ""
        row = [
            metric_label(key),
            with_interval(key, baseline.get(key), base_ci.get(key)),
            with_interval(key, finetuned.get(key), tuned_ci.get(key)),
            delta,
            significant,
        ]
        if real:
            row.append(with_interval(key, real.get(key), real_ci.get(key)) if key in real else "–")
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
        "Brackets are 95% bootstrap intervals over the held-out examples. A change is marked significant only when "
        "the paired bootstrap (both sides resampled on the same examples) puts its 95% interval entirely above or "
        "below 0; otherwise the test set cannot tell it from noise. Replies are sampled as `replica chat` samples "
        "them; reference-overlap metrics are also shown for greedy replies.",
        "",
        "The reference column shows the published baseline → fine-tuned values of the DeepSeek notebook project "
        "for orientation only: different model, data and prompts, so compare directions, not numbers.",
        "",
        "## How to read each metric",
        "",
    ]
    shown = _side_values(metrics, "baseline")[0].keys() | _side_values(metrics, "finetuned")[0].keys()
    lines += [f"- **{info.label}** — {info.how_to_read}" for key, info in METRICS.items() if key in shown]
    lines += [
        "",
        "## Memorization",
        "",
        "The copy rate and the longest shared substring compare each reply with every reply of the training split. "
        "The *real replies* column is the reference point: a user repeats short replies (\"ok\", \"ahah\") and "
        "shares phrases with their past messages, so some overlap is normal. A side far above it recites its "
        "training data instead of answering, which also means it can repeat private messages to whoever chats "
        "with it.",
    ]
    if plots:
        lines += ["", "## Plots", ""] + [f"![{plot.stem}]({plot.name})" for plot in plots]
    return "\n".join(lines) + "\n"


def _save(figure, path: Path) -> None:
    """Render a matplotlib Figure to PNG atomically."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure)
    with atomic_open(path, "wb") as handle:
        figure.savefig(handle, format="png", dpi=120, bbox_inches="tight")


PANELS = (
    ("higher", "higher is better"),
    ("lower", "lower is better\n(discriminator AUC: 0.5 = indistinguishable)"),
    ("target", "closest to the\nreal replies is best"),
)


def plot_metrics(metrics: Mapping[str, Any], path: Path) -> bool:
    """Bars of baseline vs fine-tuned (and real replies) for the [0, 1] metrics with 95% intervals, one panel per
    direction: higher is better, lower is better, closest to real. False (nothing written) when there are none."""
    from matplotlib.figure import Figure

    (baseline, base_ci), (finetuned, tuned_ci) = _side_values(metrics, "baseline"), _side_values(metrics, "finetuned")
    real, real_ci = _side_values(metrics, "real")
    panels = []
    for better, title in PANELS:
        keys = [
            key
            for key, info in METRICS.items()
            if info.kind == "unit" and info.better == better and _is_number(baseline.get(key)) and _is_number(finetuned.get(key))
        ]
        if keys:
            panels.append((title, keys))
    if not panels:
        return False
    widths = [max(2.0, 1.2 * len(keys)) for _, keys in panels]
    figure = Figure(figsize=(sum(widths) + 1.5, 4.8))
    axes_list = figure.subplots(1, len(panels), gridspec_kw={"width_ratios": widths}, squeeze=False)[0]
    series = [("baseline", baseline, base_ci), ("fine-tuned", finetuned, tuned_ci), ("real replies", real, real_ci)]
    colors = {"baseline": "tab:blue", "fine-tuned": "tab:orange", "real replies": "tab:green"}
    for axes, (title, keys) in zip(axes_list, panels):
        shown = [(name, values, ci) for name, values, ci in series if any(_is_number(values.get(k)) for k in keys)]
        width = 0.8 / len(shown)
        for offset, (name, values, ci) in enumerate(shown):
            positions = [x - 0.4 + width * (offset + 0.5) for x in range(len(keys))]
            heights = [values.get(key) if _is_number(values.get(key)) else 0.0 for key in keys]
            errors = [[0.0] * len(keys), [0.0] * len(keys)]
            for index, key in enumerate(keys):
                interval = ci.get(key)
                if isinstance(interval, Sequence) and len(interval) == 2 and all(map(_is_number, interval)):
                    errors[0][index] = max(0.0, heights[index] - interval[0])
                    errors[1][index] = max(0.0, interval[1] - heights[index])
            has_errors = any(errors[0]) or any(errors[1])
            axes.bar(positions, heights, width, yerr=errors if has_errors else None, capsize=3, label=name,
                     color=colors[name])
        axes.set_xticks(list(range(len(keys))), [METRICS[key].label for key in keys], rotation=30, ha="right")
        axes.set_ylim(0, 1.05)
        axes.set_title(title, fontsize=10)
    axes_list[0].set_ylabel("score (0-1); error bars = 95% CI")
    handles = {label: handle for axes in axes_list for handle, label in zip(*axes.get_legend_handles_labels())}
    figure.legend(handles.values(), handles.keys(), loc="upper left", fontsize=8, ncol=len(handles))
    figure.suptitle("Baseline vs fine-tuned")
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
        step = _float_or(row.get("step"), float(index))
        for column, value in row.items():
            number = _float_or(value, None) if isinstance(column, str) and "loss" in column else None
            if number is not None:
                steps, values = curves.setdefault(column, ([], []))
                steps.append(step)
                values.append(number)
    return curves


def _float_or(text: object, default: float | None) -> float | None:
    """A CSV cell as a float; `default` when it is empty or not a number."""
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


def _cell(text: str) -> str:
    """One markdown table cell: a single line, pipes and angle brackets escaped (`<NAME_1>` stays visible)."""
    text = " ".join(text.split()).replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")
    return text or "*(empty)*"


def probes_markdown(probes: Sequence[dict], decoding: Mapping) -> str:
    """The report's probes section: each out-of-domain message with the sampled replies of both sides."""
    lines = [
        "",
        "## Out-of-domain probes",
        "",
        f"Messages unlike the chats, answered {decoding['samples']} times by each side (sampling as `replica chat` "
        f"does: temperature {decoding['temperature']}, top-p {decoding['top_p']}). "
        "The fine-tuned side should answer in the user's voice, not as an assistant.",
    ]
    for probe in probes:
        lines += ["", f"**{_cell(probe['prompt'])}**", "", "| # | baseline | fine-tuned |", "|---|---|---|"]
        for number, (base, tuned) in enumerate(zip(probe["baseline"], probe["finetuned"]), start=1):
            lines.append(f"| {number} | {_cell(base)} | {_cell(tuned)} |")
    return "\n".join(lines) + "\n"


def write_report(
    metrics: Mapping[str, Any],
    out_dir: str | Path,
    reference: Mapping[str, tuple[float, float]] = DEEPSEEK_NOTEBOOK_REFERENCE,
    *,
    loss_csv: Path | None = None,
    replies: Mapping[str, Sequence[str]] | None = None,
    probes: Sequence[dict] | None = None,
    sections: Sequence[str] = (),
) -> list[Path]:
    """Write report.md, metrics.png, lengths.png (when `replies` given) and loss.png (when `loss_csv` given).

    `replies` maps a series name ("real", "baseline", "fine-tuned") to its reply texts; only their lengths are
    plotted. `probes` (answers of both sides, sampled as `metrics["meta"]["decoding"]` says) and the blind test
    (`metrics["human"]`) get their own sections; `sections` are further markdown sections appended in order.
    Returns the written paths, report.md last.
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
    text = _markdown(metrics, reference, plots)
    if probes:
        text += probes_markdown(probes, metrics["meta"]["decoding"])
    if "human" in metrics:
        text += human_markdown(metrics["human"])
    text += "".join(sections)
    report = out_dir / "report.md"
    write_text(report, text)
    return plots + [report]
