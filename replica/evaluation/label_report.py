"""report.md's sections for runs trained with relationship labels: metrics per label and label fidelity."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from replica.evaluation.formatting import format_delta, format_value, with_interval
from replica.evaluation.metric_catalogue import metric_label

LABEL_METRICS = ("style_similarity", "discriminator_auc", "clean_stop_rate", "perplexity")


def per_relationship_markdown(per_label: Mapping[str, Mapping[str, Any]]) -> str:
    """One table: every label's metrics on both sides, with intervals and paired differences where it has enough
    examples."""
    lines = ["", "## Per relationship", "",
             "The same metrics on the held-out examples of each label (the fine-tuned side is told each example's "
             "label, as in training; the baseline is not).", "",
             "| relationship | examples | metric | baseline [95% CI] | fine-tuned [95% CI] | Δ [paired 95% CI] |",
             "|---|---|---|---|---|---|"]
    notes = []
    for label, entry in per_label.items():
        base, tuned = entry["baseline"], entry["finetuned"]
        difference = entry.get("difference", {})
        for key in LABEL_METRICS:
            change = difference.get(key)
            if change:
                delta = with_interval(key, change["delta"], change["ci"], format_delta)
            else:
                numbers = base.get(key) is not None and tuned.get(key) is not None
                delta = format_delta(key, tuned[key] - base[key]) if numbers else ""
            lines.append(f"| {label} | {entry['n_examples']} | {metric_label(key)} | "
                         f"{with_interval(key, base.get(key), base.get('ci', {}).get(key))} | "
                         f"{with_interval(key, tuned.get(key), tuned.get('ci', {}).get(key))} | {delta} |")
        if entry.get("note"):
            notes.append(f"- **{label}**: {entry['note']}.")
    return "\n".join(lines + ([""] + notes if notes else [])) + "\n"


def _cell(values: Mapping[str, Any], name: str) -> str:
    return with_interval("fidelity", values.get(name), values.get(f"{name}_ci"))


def fidelity_markdown(fidelity: Mapping[str, Any]) -> str:
    """Label fidelity per pair of labels and their mean, with the classifier's ceiling on real replies."""
    lines = ["", "## Label fidelity", ""]
    if "note" in fidelity:
        return "\n".join(lines + [f"Not measured: {fidelity['note']}."]) + "\n"
    lines += [
        "Every held-out context of two labels is answered under each label with the same seed "
        f"({fidelity['samples']} sampled {'reply' if fidelity['samples'] == 1 else 'replies'} each); a classifier trained on your real training replies to the two "
        "labels says which label each reply reads as. **Fidelity** = share of replies put under the label they were "
        "generated for: 0.5 = the label changes nothing, 1.0 = always the right style. **Own context**: the replies "
        "written under each context's own label (context and label together). **Ceiling**: the same classifier on "
        "your real held-out replies (balanced accuracy). Brackets: 95% bootstrap intervals over contexts.",
        "",
    ]
    if not fidelity["in_prompt"]:
        lines += ["This run's prompts do not name the relationship (`data.relationship_in_prompt=false`): both "
                  "replies to a context are the same reply, so fidelity is 0.5 by construction.", ""]
    lines += ["| labels | contexts | fidelity [95% CI] | kept per label | own context [95% CI] | ceiling [95% CI] |",
              "|---|---|---|---|---|---|"]
    for pair, values in fidelity["pairs"].items():
        kept = ", ".join(f"{label} {format_value('fidelity', rate)}" for label, rate in values["label_kept"].items())
        lines.append(f"| {pair} | {values['contexts']} | {_cell(values, 'fidelity')} | {kept} | "
                     f"{_cell(values, 'own_context')} | {_cell(values, 'ceiling')} |")
    mean = fidelity["mean"]
    lines.append(f"| **mean** | {fidelity['contexts']} | {_cell(mean, 'fidelity')} | | {_cell(mean, 'own_context')} | "
                 f"{_cell(mean, 'ceiling')} |")
    return "\n".join(lines) + "\n"


def relationship_sections(metrics: Mapping[str, Any]) -> list[str]:
    """The report's relationship sections present in `metrics` (none for an unlabelled run)."""
    sections = []
    if "per_relationship" in metrics:
        sections.append(per_relationship_markdown(metrics["per_relationship"]))
    if "label_fidelity" in metrics:
        sections.append(fidelity_markdown(metrics["label_fidelity"]))
    return sections
