"""Metric values as the report, the console summary and the label sections show them: flattened keys, numbers in
each metric's own format, intervals and paired differences."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from replica.evaluation.metric_catalogue import METRICS


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


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def format_value(key: str, value: Any) -> str:
    if value is None:
        return "–"
    if not is_number(value):
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
    if not is_number(delta) or math.isnan(delta):
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
    if text and isinstance(interval, Sequence) and len(interval) == 2 and all(map(is_number, interval)):
        text += f" [{formatter(key, interval[0])}, {formatter(key, interval[1])}]"
    return text


def side_values(metrics: Mapping[str, Any], side: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(flat metric values without the intervals, intervals by metric) of one side."""
    values = dict(metrics.get(side, {}))
    intervals = values.pop("ci", {}) or {}
    return flatten(values), dict(intervals)


def markdown_cell(text: str) -> str:
    """One markdown table cell: a single line, pipes and angle brackets escaped (`<NAME_1>` stays visible)."""
    text = " ".join(text.split()).replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")
    return text or "*(empty)*"
