"""Hydra callback: after a multirun, one `summary.csv` row per job (its overrides + its summary metrics)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from replica.atomic import write_text

SCALARS = (int, float, str, bool, type(None))


def sweep_rows(sweep_dir: Path) -> list[dict[str, Any]]:
    rows = []
    for job in sorted((p for p in sweep_dir.iterdir() if p.is_dir()), key=lambda p: (len(p.name), p.name)):
        overrides_file = job / ".hydra" / "overrides.yaml"
        if not overrides_file.exists():
            continue
        row: dict[str, Any] = {"job": job.name}
        row.update(dict(o.split("=", 1) for o in OmegaConf.load(overrides_file) if "=" in o))
        summary = _read_summary(job / "summary.json")
        if summary is not None:
            row.update({k: v for k, v in summary.items() if isinstance(v, SCALARS)})
            row["status"] = "done"
        else:
            row["status"] = "failed"
        rows.append(row)
    return rows


def _read_summary(path: Path) -> dict[str, Any] | None:
    """A job's summary.json, None when the job wrote none (failed) or it is unreadable."""
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return summary if isinstance(summary, dict) else None


def write_sweep_summary(sweep_dir: Path) -> Path | None:
    rows = sweep_rows(sweep_dir)
    if not rows:
        return None
    columns = list(dict.fromkeys(k for row in rows for k in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    out = sweep_dir / "summary.csv"
    write_text(out, buffer.getvalue())
    return out


class SweepSummary(Callback):
    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        out = write_sweep_summary(Path(config.hydra.sweep.dir))
        if out is not None:
            print(f"sweep summary: {out}")
