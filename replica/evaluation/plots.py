"""The report's PNG plots: baseline vs fine-tuned metrics with intervals, reply lengths, training curves."""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from replica.atomic import atomic_open
from replica.evaluation.formatting import is_number, side_values
from replica.evaluation.metric_catalogue import METRICS

LENGTH_PLOT_BINS = 30
LENGTH_PLOT_PERCENTILE = 99  # longer replies are drawn in the last bin so one rambling reply can't squash the rest



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

    (baseline, base_ci), (finetuned, tuned_ci) = side_values(metrics, "baseline"), side_values(metrics, "finetuned")
    real, real_ci = side_values(metrics, "real")
    panels = []
    for better, title in PANELS:
        keys = [
            key
            for key, info in METRICS.items()
            if info.kind == "unit" and info.better == better and is_number(baseline.get(key)) and is_number(finetuned.get(key))
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
        shown = [(name, values, ci) for name, values, ci in series if any(is_number(values.get(k)) for k in keys)]
        width = 0.8 / len(shown)
        for offset, (name, values, ci) in enumerate(shown):
            positions = [x - 0.4 + width * (offset + 0.5) for x in range(len(keys))]
            heights = [values.get(key) if is_number(values.get(key)) else 0.0 for key in keys]
            errors = [[0.0] * len(keys), [0.0] * len(keys)]
            for index, key in enumerate(keys):
                interval = ci.get(key)
                if isinstance(interval, Sequence) and len(interval) == 2 and all(map(is_number, interval)):
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

    A missing or damaged log only costs the plot: it gives no curves, and unparseable cells are skipped.
    """
    try:
        with open(loss_csv, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error):
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
