"""The `data` section as the pipeline reads it: checked by the one data validator (`replica.config`), then typed as
the section itself (`replica.settings.DataSection`), its shorthands expanded."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import replace

from omegaconf import DictConfig, OmegaConf

from replica.config import data_problems
from replica.errors import ReplicaInputError
from replica.ingest.limits import Limits
from replica.settings import DataSection, MaskSection


def parse_data_config(data_cfg: Mapping | DictConfig) -> DataSection:
    """Validate the `data` section (DictConfig or plain dict) with the data validator train.py and evaluate.py use,
    and return it typed, with `~` expanded, one string read as a one-element list and codes in their usual case;
    one ReplicaInputError names every problem."""
    cfg = OmegaConf.to_container(data_cfg, resolve=True) if isinstance(data_cfg, DictConfig) else dict(data_cfg)
    problems = data_problems(cfg)
    if problems:
        raise ReplicaInputError("invalid config: " + "; ".join(problems))
    section = DataSection(**{key: value for key, value in cfg.items() if key in DataSection.__dataclass_fields__})
    return replace(
        section,
        exports=[os.path.expanduser(path) for path in _as_list(section.exports)],
        me=_as_list(section.me),
        datasets_dir=os.path.expanduser(section.datasets_dir),
        mask=MaskSection(**section.mask) if isinstance(section.mask, Mapping) else section.mask,
        phone_region=section.phone_region.upper(),
        languages=[code.lower() for code in _as_list(section.languages)],
        merge_gap=float(section.merge_gap),
        session_gap=float(section.session_gap),
        split=[float(part) for part in section.split],
        relationships={str(name): str(label) for name, label in (section.relationships or {}).items()},
    )


def input_limits(cfg: DataSection) -> Limits:
    """What loading the exports may read (`data.max_input_mib`, `data.max_messages`)."""
    return Limits(max_input_mib=cfg.max_input_mib, max_messages=cfg.max_messages)


def _as_list(value: str | list[str]) -> list[str]:
    """A single string is a one-element list (`data.me=Léa`)."""
    return [value] if isinstance(value, str) else list(value)
