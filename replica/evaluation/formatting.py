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


# metric kind -> (format of a value, format of a change); None: the plain number rule at the end of `_formatted`
FORMATS: dict[str, tuple[str | None, str | None]] = {
    "percent": ("{:.0%}", "{:+.0f} pp"),  # a change of a share, in percentage points
    "count": ("{:,.0f}", "{:+,.0f}"),
    "chars": ("{:.1f}", "{:+.1f}"),
    "unit": ("{:.3f}", None),
}


def format_value(key: str, value: Any) -> str:
    if value is None:
        return "–"
    if not is_number(value):
        return str(value)
    if math.isnan(value):
        return "n/a"
    return _formatted(key, value, change=False)


def format_delta(key: str, delta: Any) -> str:
    if not is_number(delta) or math.isnan(delta):
        return ""
    return _formatted(key, delta, change=True)


def _formatted(key: str, number: float, *, change: bool) -> str:
    kind = METRICS[key].kind if key in METRICS else "float"
    spec = FORMATS.get(kind, (None, None))[change]
    if spec is not None:
        return spec.format(number * 100 if change and kind == "percent" else number)
    sign = "+" if change else ""
    return f"{number:{sign},.2f}" if abs(number) >= 10 else f"{number:{sign}.3f}"


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
