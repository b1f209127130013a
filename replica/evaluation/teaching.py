"""Where to teach: the relationship label whose replies are weakest, and labels whose style fell below the base's.

Read from metrics already computed: `label_fidelity` (how often a reply written for a label reads as that label)
and `per_relationship` (each label's style similarity, base and fine-tuned). The report opens with it, and
evaluate.py prints it, so the owner knows which relationship to correct first (`replica chat` /fix, docs/teaching.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from statistics import mean
from typing import Any

from replica.evaluation.formatting import format_value

STYLE = "style_similarity"


def label_kept(fidelity: Mapping[str, Any]) -> dict[str, float]:
    """Per label: the share of replies written for it that read as it, averaged over the label pairs it is in."""
    shares: dict[str, list[float]] = {}
    for pair in (fidelity.get("pairs") or {}).values():
        for label, share in (pair.get("label_kept") or {}).items():
            if share is not None:
                shares.setdefault(label, []).append(float(share))
    return {label: mean(values) for label, values in shares.items()}


def where_to_teach(metrics: Mapping[str, Any]) -> dict[str, Any] | None:
    """The weakest label (lowest label fidelity, else lowest fine-tuned style), every label's figures next to the
    overall ones, and the labels whose fine-tuned style is below the base model's; None without labels."""
    per_label = metrics.get("per_relationship") or {}
    kept = label_kept(metrics.get("label_fidelity") or {})
    labels = {}
    for label, entry in per_label.items():
        tuned, base = entry.get("finetuned", {}).get(STYLE), entry.get("baseline", {}).get(STYLE)
        labels[label] = {"fidelity": kept.get(label), "style": tuned, "base_style": base}
    ranked = [label for label in labels if labels[label]["fidelity"] is not None] or \
             [label for label in labels if labels[label]["style"] is not None]
    if not ranked:
        return None
    key = "fidelity" if labels[ranked[0]]["fidelity"] is not None else "style"
    weakest = min(ranked, key=lambda label: (labels[label][key], label))
    below = sorted(label for label, row in labels.items()
                   if row["style"] is not None and row["base_style"] is not None and row["style"] < row["base_style"])
    overall = {"fidelity": (metrics.get("label_fidelity") or {}).get("mean", {}).get("fidelity"),
               "style": (metrics.get("finetuned") or {}).get(STYLE)}
    return {"weakest": weakest, "ranked_by": key, "labels": labels, "style_below_base": below, "overall": overall}


def teaching_line(entry: Mapping[str, Any]) -> str:
    """One line for the console: the weakest label with its figures, and labels below the base."""
    row = entry["labels"][entry["weakest"]]
    figures = [f"{name} {format_value(STYLE if name == 'style' else 'fidelity', row[name])}"
               for name in ("fidelity", "style") if row[name] is not None]
    line = f"weakest relationship: {entry['weakest']} ({', '.join(figures)})"
    if entry["style_below_base"]:
        line += f"; style below the base model for {', '.join(entry['style_below_base'])}"
    return line


def where_to_teach_markdown(entry: Mapping[str, Any]) -> list[str]:
    """The report's opening section."""
    overall = entry["overall"]
    lines = ["## Where to teach", "",
             f"**{entry['weakest']}** is the weakest relationship (lowest {entry['ranked_by']}). Correct its replies "
             "first: `/fix` in `replica chat`, the edit button of the web chat, or `POST /v1/feedback`; then "
             "`python train.py from_run=<this run>` (docs/teaching.md).", "",
             "| relationship | label fidelity | style similarity | base model's style |", "|---|---|---|---|"]
    for label, row in entry["labels"].items():
        flag = " ⚠ below the base" if label in entry["style_below_base"] else ""
        lines.append(f"| {label} | {format_value('fidelity', row['fidelity'])} | "
                     f"{format_value(STYLE, row['style'])}{flag} | {format_value(STYLE, row['base_style'])} |")
    lines.append(f"| *all* | {format_value('fidelity', overall['fidelity'])} | {format_value(STYLE, overall['style'])} | |")
    return lines + [""]
