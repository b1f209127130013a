"""Evaluation report: report.md (comparison table, how to read each metric, probes, blind test) and its plots.

`metrics` is {"baseline": {...}, "finetuned": {...}, "meta": {...}} with an optional "real": {...} holding the
same measures on the real held-out replies (distinct-n, looping rate, ...). Nested dicts are flattened to dotted
keys ("style.per_feature.laughter"). Metrics named in METRICS get their own format and reading notes; any other
number is still tabulated.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from replica.atomic import write_text
from replica.evaluation.formatting import (
    flatten,
    format_delta,
    format_value,
    is_number,
    markdown_cell,
    side_values,
    with_interval,
)
from replica.evaluation.human import human_markdown
from replica.evaluation.metric_catalogue import (
    DEEPSEEK_NOTEBOOK_REFERENCE,
    METRICS,
    metric_label,
)
from replica.evaluation.plots import plot_lengths, plot_loss, plot_metrics
from replica.evaluation.teaching import where_to_teach_markdown


def _table(metrics: Mapping[str, Any], reference: Mapping[str, tuple[float, float]],
           names: tuple[str, str] = ("baseline", "fine-tuned")) -> list[str]:
    (baseline, base_ci), (finetuned, tuned_ci) = side_values(metrics, "baseline"), side_values(metrics, "finetuned")
    real, real_ci = side_values(metrics, "real")
    difference = metrics.get("difference", {})
    keys = [key for key in METRICS if key in baseline or key in finetuned]
    keys += sorted(key for key in baseline.keys() | finetuned.keys() if key not in METRICS)
    header = ["metric", f"{names[0]} [95% CI]", f"{names[1]} [95% CI]", "Δ [paired 95% CI]", "significant"]
    header += (["real replies"] if real else []) + (["reference project"] if reference else [])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for key in keys:
        change = difference.get(key) or {}
        if change:
            delta = with_interval(key, change.get("delta"), change.get("ci"), format_delta)
            significant = "yes" if change.get("significant") else "no"
        else:
            base, tuned = baseline.get(key), finetuned.get(key)
            numbers = is_number(base) and is_number(tuned)
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
        elif reference:
            row.append("")
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |")
    return lines


def _markdown(metrics: Mapping[str, Any], reference: Mapping[str, tuple[float, float]], plots: list[Path]) -> str:
    lines = ["# Replica evaluation", ""]
    meta = flatten(metrics.get("meta", {}))
    if meta:
        lines += [f"- **{key}**: {value}" for key, value in meta.items()] + [""]
    if metrics.get("where_to_teach"):
        lines += where_to_teach_markdown(metrics["where_to_teach"])
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
    shown = side_values(metrics, "baseline")[0].keys() | side_values(metrics, "finetuned")[0].keys()
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
    if "versus_parent" in metrics:
        lines += ["", "## Against the parent run", "",
                  f"The run this one continued from (`{metrics['versus_parent']['parent']}`), scored on the same "
                  "held-out examples with the same seeds: did the new chats and corrections help?", ""]
        lines += _table(metrics["versus_parent"], {}, ("parent", "this run"))
    if plots:
        lines += ["", "## Plots", ""] + [f"![{plot.stem}]({plot.name})" for plot in plots]
    return "\n".join(lines) + "\n"


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
        lines += ["", f"**{markdown_cell(probe['prompt'])}**", "", "| # | baseline | fine-tuned |", "|---|---|---|"]
        for number, (base, tuned) in enumerate(zip(probe["baseline"], probe["finetuned"]), start=1):
            lines.append(f"| {number} | {markdown_cell(base)} | {markdown_cell(tuned)} |")
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
