"""Read and check the `data` config group up front, reporting every problem in one line."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import phonenumbers
from omegaconf import DictConfig, OmegaConf

from replica.errors import ReplicaInputError
from replica.ingest.limits import Limits
from replica.prepare.clean import MEDIA_MODES
from replica.prepare.pii import MaskOptions

DATE_ORDERS = ("auto", "dmy", "mdy", "ymd")


@dataclass(frozen=True, slots=True)
class DataConfig:
    exports: list[str]
    me: list[str]
    datasets_dir: str  # parent of the content-addressed dataset folders
    limits: Limits
    date_order: str
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


def parse_data_config(data_cfg: Mapping | DictConfig) -> DataConfig:
    """Validate the `data` group (DictConfig or plain dict) and return it typed; raise one ReplicaInputError
    naming every problem (the first problem of each key)."""
    cfg: dict[str, Any] = (
        OmegaConf.to_container(data_cfg, resolve=True) if isinstance(data_cfg, DictConfig) else dict(data_cfg)
    )
    keys = [f.name for f in fields(DataConfig) if f.name != "limits"] + [f.name for f in fields(Limits)]
    missing = [f"data.{key}" for key in keys if key not in cfg]
    # The first problem of each key; a missing key is named once, in the "missing" entry.
    problems: dict[str, str] = {key.removeprefix("data."): "" for key in missing}
    if missing:
        problems["missing"] = f"missing {', '.join(missing)} (see conf/data/default.yaml)"

    def report(key: str, problem: str) -> None:
        problems.setdefault(key, problem)
    get = cfg.get

    exports = _string_list(get("exports"))
    if exports is None:
        report("exports", f"data.exports must be a list of paths, got {get('exports')!r}")
    elif not exports:
        report("exports", "data.exports is empty: pass data.exports=[path/to/export, ...]")
    me = _string_list(get("me"))
    if me is None:
        report("me", f"data.me must be a list of names, got {get('me')!r}")
    if not isinstance(get("datasets_dir"), str) or not get("datasets_dir"):
        report("datasets_dir", f"data.datasets_dir={get('datasets_dir')!r} must be a directory path")
    if get("date_order") not in DATE_ORDERS:
        report("date_order", f"data.date_order={get('date_order')!r} must be one of {'|'.join(DATE_ORDERS)}")
    if get("media") not in MEDIA_MODES:
        report("media", f"data.media={get('media')!r} must be one of {'|'.join(MEDIA_MODES)}")
    known_mask = ", ".join(f.name for f in fields(MaskOptions))
    mask = get("mask") if isinstance(get("mask"), Mapping) else {}
    if not isinstance(get("mask"), Mapping):
        report("mask", f"data.mask must map {known_mask} to true/false")
    for key, value in mask.items():
        if key not in known_mask.split(", "):
            report(f"mask.{key}", f"unknown key data.mask.{key} (known: {known_mask})")
        elif not isinstance(value, bool):
            report(f"mask.{key}", f"data.mask.{key}={value!r} must be true or false")
    region = get("phone_region")
    if not isinstance(region, str) or region.upper() not in phonenumbers.SUPPORTED_REGIONS:
        report("phone_region", f"data.phone_region={region!r} must be a two-letter region code such as IT, US, GB")
    languages = _string_list(get("languages"))
    if languages is None:
        report("languages", f"data.languages={get('languages')!r} must be a list of ISO 639-1 codes such as [it, en]")
    for key in ("language_sample", "context_min", "context_max", "max_input_mib", "max_messages"):
        if not _is_int(get(key)) or get(key) < 1:
            report(key, f"data.{key}={get(key)!r} must be an integer >= 1")
    if _is_int(get("context_min")) and _is_int(get("context_max")) and get("context_min") > get("context_max"):
        report("context_max", f"data.context_min ({get('context_min')}) > data.context_max ({get('context_max')})")
    if not _is_number(get("merge_gap")) or get("merge_gap") < 0:
        report("merge_gap", f"data.merge_gap={get('merge_gap')!r} must be a number of minutes >= 0")
    if not _is_number(get("session_gap")) or get("session_gap") <= 0:
        report("session_gap", f"data.session_gap={get('session_gap')!r} must be a number of hours > 0")
    split = get("split")
    if not isinstance(split, list) or len(split) != 3 or not all(_is_number(part) and part >= 0 for part in split):
        report("split", f"data.split={split!r} must be three fractions [train, val, test] >= 0")
    elif not math.isclose(sum(split), 1.0, abs_tol=1e-6):
        report("split", f"data.split={split} sums to {sum(split):g}, must sum to 1")
    elif split[0] <= 0:
        report("split", f"data.split={split} leaves train empty")
    if not _is_int(get("seed")):
        report("seed", f"data.seed={get('seed')!r} must be an integer")
    if problems:
        raise ReplicaInputError("invalid data config: " + "; ".join(filter(None, problems.values())))
    return DataConfig(
        exports=[os.path.expanduser(p) for p in exports], me=me, datasets_dir=os.path.expanduser(str(get("datasets_dir"))),
        limits=Limits(max_input_mib=get("max_input_mib"), max_messages=get("max_messages")), date_order=get("date_order"), media=get("media"),
        mask=MaskOptions(**mask), phone_region=region.upper(), languages=[code.lower() for code in languages],
        language_sample=get("language_sample"), merge_gap=float(get("merge_gap")),
        session_gap=float(get("session_gap")), context_min=get("context_min"), context_max=get("context_max"),
        split=[float(part) for part in split], seed=get("seed"),
    )


def _string_list(value: Any) -> list[str] | None:
    """A list of strings; a single string counts as a one-element list (`data.me=Léa`)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)) and all(isinstance(item, str) for item in value):
        return [str(item) for item in value]
    return None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
