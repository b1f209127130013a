"""The `data` section as the pipeline reads it: checked by the one data validator (`replica.config`), then typed."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from omegaconf import DictConfig, OmegaConf

from replica.config import data_problems
from replica.errors import ReplicaInputError
from replica.ingest.limits import Limits
from replica.prepare.pii import MaskOptions


@dataclass(frozen=True, slots=True)
class DataConfig:
    exports: list[str]
    me: list[str]
    datasets_dir: str  # parent of the content-addressed dataset folders
    limits: Limits
    date_order: str
    timezone: str | None  # IANA name; None = the machine's zone (or REPLICA_TZ)
    media: str
    mask: MaskOptions
    phone_region: str
    languages: list[str]
    language_sample: int
    merge_gap: float
    session_gap: float
    context_min: int
    context_max: int
    split: list[float]
    seed: int
    relationships: dict[str, str]  # name of a contact or chat -> label


def parse_data_config(data_cfg: Mapping | DictConfig) -> DataConfig:
    """Validate the `data` section (DictConfig or plain dict) with the data validator train.py and evaluate.py use,
    and return it typed; one ReplicaInputError names every problem."""
    cfg = OmegaConf.to_container(data_cfg, resolve=True) if isinstance(data_cfg, DictConfig) else dict(data_cfg)
    problems = data_problems(cfg)
    if problems:
        raise ReplicaInputError("invalid config: " + "; ".join(problems))
    return DataConfig(
        exports=[os.path.expanduser(path) for path in _as_list(cfg["exports"])],
        me=_as_list(cfg["me"]),
        datasets_dir=os.path.expanduser(cfg["datasets_dir"]),
        limits=Limits(max_input_mib=cfg["max_input_mib"], max_messages=cfg["max_messages"]),
        date_order=cfg["date_order"],
        timezone=cfg.get("timezone"),
        media=cfg["media"],
        mask=MaskOptions(**cfg["mask"]),
        phone_region=cfg["phone_region"].upper(),
        languages=[code.lower() for code in _as_list(cfg["languages"])],
        language_sample=cfg["language_sample"],
        merge_gap=float(cfg["merge_gap"]),
        session_gap=float(cfg["session_gap"]),
        context_min=cfg["context_min"],
        context_max=cfg["context_max"],
        split=[float(part) for part in cfg["split"]],
        seed=cfg["seed"],
        relationships={str(name): str(label) for name, label in (cfg.get("relationships") or {}).items()},
    )


def _as_list(value: str | list[str]) -> list[str]:
    """A single string is a one-element list (`data.me=Léa`)."""
    return [value] if isinstance(value, str) else list(value)
