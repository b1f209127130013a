"""Which checkpoint a run resumes from: an explicit `ckpt_path`, or `auto` = the newest earlier run that fits.

A run records the resolved config that decides whether its weights fit another run (model, lora, quant, data) in
`resume_key.json`; a checkpoint is only resumed by a run with the same key, and a damaged one never.
"""

from __future__ import annotations

import json
import logging
import zipfile
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from replica.atomic import write_json
from replica.errors import ReplicaInputError

log = logging.getLogger(__name__)

RESUME_KEY_FILE = "resume_key.json"
RESUME_SECTIONS = ("model", "lora", "quant", "data")
WHERE_NOT_WHAT = {"data": ("datasets_dir",)}  # locations, not settings: they may differ between fitting runs
PRIVATE_SECTIONS = ("data",)  # values name the user's files and contacts: report differing keys only
MAX_LISTED_RUNS = 5


def resume_key(cfg: DictConfig) -> dict[str, Any]:
    """The resolved sections that must match for a checkpoint's weights and data order to fit this run."""
    key = {}
    for section in RESUME_SECTIONS:
        if section in cfg:
            node = OmegaConf.to_container(cfg[section], resolve=True)
            for name in WHERE_NOT_WHAT.get(section, ()):
                node.pop(name, None)
            key[section] = node
    return json.loads(json.dumps(key, default=str))  # the JSON round trip a stored key went through


def write_resume_key(run_dir: Path, cfg: DictConfig) -> None:
    write_json(run_dir / RESUME_KEY_FILE, resume_key(cfg))


def checkpoint_problem(path: Path) -> str | None:
    """Why `path` cannot be resumed from (truncated, corrupt, not a checkpoint), or None when it is intact."""
    try:
        with zipfile.ZipFile(path) as archive:
            if not any(name == "data.pkl" or name.endswith("/data.pkl") for name in archive.namelist()):
                return "not a PyTorch checkpoint"
            broken = archive.testzip()  # reads every member and checks its CRC
    except Exception as err:  # BadZipFile, OSError, EOFError, zlib.error, ...: all mean a damaged file
        return f"truncated or corrupt ({' '.join(str(err).split()) or type(err).__name__})"
    return f"corrupt (bad checksum in {broken})" if broken else None


def differences(mine: dict[str, Any], theirs: dict[str, Any]) -> list[str]:
    """Readable differences between two resume keys, e.g. `lora.r=8 (this run: 4)`."""
    flat_mine, flat_theirs = _flatten(mine), _flatten(theirs)
    found = []
    for key in sorted(set(flat_mine) | set(flat_theirs)):
        if flat_mine.get(key, _MISSING) == flat_theirs.get(key, _MISSING):
            continue
        if key.split(".")[0] in PRIVATE_SECTIONS:
            found.append(f"{key} differs")
        else:
            found.append(f"{key}={_show(flat_theirs.get(key, _MISSING))} (this run: {_show(flat_mine.get(key, _MISSING))})")
    return found


_MISSING = object()


def _show(value: Any) -> str:
    return "unset" if value is _MISSING else json.dumps(value, ensure_ascii=False)


def _flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(node, dict):
        return {prefix: node}
    flat: dict[str, Any] = {}
    for key, value in node.items():
        flat.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def why_not_resumable(ckpt: Path, mine: dict[str, Any]) -> str | None:
    """Why the run owning `ckpt` (…/checkpoints/last.ckpt) cannot be resumed by this run, or None if it can."""
    key_file = ckpt.parent.parent / RESUME_KEY_FILE
    try:
        theirs = json.loads(key_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return f"no {RESUME_KEY_FILE} (made by an older Replica)"
    except (OSError, ValueError) as err:
        return f"unreadable {RESUME_KEY_FILE} ({type(err).__name__})"
    diff = differences(mine, theirs) if isinstance(theirs, dict) else [f"{RESUME_KEY_FILE} is not a JSON object"]
    if diff:
        return "other settings: " + ", ".join(diff[:6]) + (f" and {len(diff) - 6} more" if len(diff) > 6 else "")
    problem = checkpoint_problem(ckpt)
    return f"last.ckpt {problem}" if problem else None


def resolve_ckpt_path(cfg: DictConfig) -> str | None:
    """The checkpoint to resume from, None to start fresh; one clear error when the requested one cannot be used."""
    ckpt = cfg.get("ckpt_path")
    if ckpt in (None, ""):
        return None
    mine = resume_key(cfg)
    if ckpt == "auto":
        return _newest_fitting_run(cfg, mine)
    path = Path(str(ckpt)).expanduser()
    if not path.is_file():
        raise ReplicaInputError(f"ckpt_path={ckpt}: no such checkpoint file (use a run's checkpoints/last.ckpt or auto)")
    problem = checkpoint_problem(path)
    if problem:
        raise ReplicaInputError(
            f"ckpt_path={ckpt}: the checkpoint is {problem}; resume from another checkpoint or start fresh with ckpt_path=null"
        )
    if (path.parent.parent / RESUME_KEY_FILE).is_file():
        reason = why_not_resumable(path, mine)
        if reason:
            raise ReplicaInputError(
                f"ckpt_path={ckpt}: that run does not fit this one ({reason}); resume it with its own settings "
                "or start fresh with ckpt_path=null"
            )
    return str(path)


def _newest_fitting_run(cfg: DictConfig, mine: dict[str, Any]) -> str | None:
    root = Path(cfg.paths.log_dir) / cfg.task_name
    own = Path(cfg.paths.output_dir).resolve()
    found = [c for c in root.glob("**/checkpoints/last.ckpt") if own not in c.resolve().parents]
    if not found:
        log.info("ckpt_path=auto: no earlier run of task %s to resume, starting fresh", cfg.task_name)
        return None
    rejected = []
    for ckpt in sorted(found, key=lambda c: c.stat().st_mtime, reverse=True):
        reason = why_not_resumable(ckpt, mine)
        if reason is None:
            log.info("ckpt_path=auto: resuming %s", ckpt)
            return str(ckpt)
        rejected.append(f"{ckpt.parent.parent.relative_to(root)} ({reason})")
    listed = "; ".join(rejected[:MAX_LISTED_RUNS]) + (f"; and {len(rejected) - MAX_LISTED_RUNS} more" if len(rejected) > MAX_LISTED_RUNS else "")
    raise ReplicaInputError(
        f"ckpt_path=auto: found {len(rejected)} earlier run(s) of task {cfg.task_name} in {root}, none fits this run: "
        f"{listed}. Use the same settings, pass ckpt_path=<run>/checkpoints/last.ckpt, or start fresh with ckpt_path=null"
    )
