"""The Hydra config tree: where it lives, composing it outside `@hydra.main`, and validating it up front."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from omegaconf import MISSING, DictConfig, ListConfig, OmegaConf

from replica.errors import ReplicaInputError

ROOT_DIR = Path(__file__).resolve().parents[1]
CONF_DIR = ROOT_DIR / "conf"

if not OmegaConf.has_resolver("replica_root"):
    OmegaConf.register_new_resolver("replica_root", lambda: str(ROOT_DIR))


_HOME_IN_VALUE = re.compile(r"(?<![^\[,\s'\"])~(?=[/\\,\]'\"\s]|$)")


def expand_home_in_overrides(overrides: Sequence[str]) -> list[str]:
    """Replace a `~` that starts a path in an override's value by the home folder (the key part is left alone)."""
    home = os.path.expanduser("~")
    expanded = []
    for override in overrides:
        key, equals, value = override.partition("=")
        expanded.append(key + equals + _HOME_IN_VALUE.sub(lambda _: home, value) if equals else override)
    return expanded


def compose(config_name: str, overrides: Sequence[str] = (), *, output_dir: str | None = None) -> DictConfig:
    """Compose `conf/<config_name>.yaml` with overrides, as `@hydra.main` would (usable from tests and CLIs)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException

    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3", job_name=config_name):
            cfg = hydra_compose(config_name=config_name, overrides=list(overrides), return_hydra_config=True)
    except HydraException as err:
        raise ReplicaInputError(f"bad override: {_first_line(err)}") from None
    OmegaConf.set_struct(cfg, False)
    if output_dir is None:
        output_dir = str(cfg.hydra.run.dir) if _resolvable(cfg, "hydra.run.dir") else "."
    del cfg["hydra"]
    cfg.paths.output_dir = output_dir
    OmegaConf.set_struct(cfg, True)
    return cfg


def _resolvable(cfg: DictConfig, key: str) -> bool:
    try:
        OmegaConf.select(cfg, key, throw_on_resolution_failure=True)
        return True
    except Exception:
        return False


def _first_line(err: BaseException) -> str:
    """Hydra/OmegaConf errors span several lines (e.g. the list of available options): fold them into one."""
    return " ".join(str(err).split())


# ---- schemas: types of every user-facing key ---------------------------------------------------------------
@dataclass
class MaskSchema:
    phones: bool = True
    emails: bool = True
    urls: bool = True
    iban: bool = True
    cards: bool = True
    names: bool = True


@dataclass
class DataSchema:
    exports: list[str] = field(default_factory=list)
    me: list[str] = field(default_factory=list)
    datasets_dir: str = MISSING
    max_input_mib: int = 256
    max_messages: int = 1000000
    date_order: str = "auto"
    media: str = "tag"
    mask: MaskSchema = field(default_factory=MaskSchema)
    phone_region: str = "IT"
    languages: list[str] = field(default_factory=list)
    language_sample: int = 40
    merge_gap: float = 10
    session_gap: float = 6
    context_min: int = 1
    context_max: int = 5
    split: list[float] = field(default_factory=lambda: [0.8, 0.1, 0.1])
    seed: int = 0
    format: str = "auto"
    max_length: int = 512


@dataclass
class LoraSchema:
    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    bias: str = "none"
    target_modules: Any = "all-linear"
    train_new_tokens: bool = True


@dataclass
class QuantSchema:
    mode: str = "nf4"
    double_quant: bool = True
    compute_dtype: str = "bfloat16"
    quant_storage: str = "uint8"


@dataclass
class RoleTokensSchema:
    me: str = "<|me|>"
    them: str = "<|them|>"
    eot: str = "<|eot|>"
    pad: str = "<|pad|>"


@dataclass
class ModelSchema:
    name_or_path: Any = None
    revision: Any = None
    trust_remote_code: bool = False
    dtype: str = "bfloat16"
    attn_implementation: Any = None
    role_tokens: RoleTokensSchema = field(default_factory=RoleTokensSchema)
    tiny: Any = None


@dataclass
class GenerationSchema:
    max_new_tokens: int = 64
    do_sample: bool = False
    temperature: float = 0.8
    top_p: float = 0.95
    top_k: int = 0
    repetition_penalty: float = 1.0
    seed: int = 0


SCHEMAS = {
    "data": DataSchema,
    "lora": LoraSchema,
    "quant": QuantSchema,
    "model": ModelSchema,
    "generation": GenerationSchema,
}
CHOICES = {
    "data.date_order": ("auto", "dmy", "mdy", "ymd"),
    "data.media": ("tag", "drop"),
    "data.format": ("auto", "role_tokens", "plain", "chat_template"),
    "quant.mode": ("nf4", "fp4", "none"),
    "quant.compute_dtype": ("bfloat16", "float16", "float32"),
    "model.dtype": ("bfloat16", "float16", "float32"),
}


def validate(cfg: DictConfig) -> None:
    """Check every schema'd section's keys, types, choices and value ranges; report all problems in one line.

    A single string where a list is expected (`data.exports=/path`, `data.me=Léa`) becomes a one-element list.
    """
    _listify_single_strings(cfg)
    problems: list[str] = []
    for section, schema in SCHEMAS.items():
        if section not in cfg:
            continue
        problems += _check_section(section, schema, cfg[section])
    for key, allowed in CHOICES.items():
        value = OmegaConf.select(cfg, key, default=None)
        if value is not None and value not in allowed:
            problems.append(f"{key}={value!r} is not one of {', '.join(allowed)}")
    problems += _range_problems(cfg)
    problems += _value_problems(cfg)
    problems += _missing_exports(cfg)
    if problems:
        raise ReplicaInputError("invalid config: " + "; ".join(problems))


def _range_problems(cfg: DictConfig) -> list[str]:
    """Cross-key and range checks; a value of the wrong type is already reported, so it is skipped here."""
    checks = [
        (
            lambda d: 0 <= d.context_min <= d.context_max,
            "data",
            "data.context_min={context_min} must be between 0 and data.context_max={context_max}",
        ),
        (lambda d: len(d.split) == 3 and abs(sum(d.split) - 1.0) < 1e-6, "data", "data.split={split} must be three fractions summing to 1"),
        (lambda d: d.max_length > 0, "data", "data.max_length={max_length} must be > 0"),
        (lambda lo: lo.r > 0, "lora", "lora.r={r} must be > 0"),
        (lambda lo: 0 <= lo.dropout < 1, "lora", "lora.dropout={dropout} must be in [0, 1)"),
    ]
    problems = []
    for ok, section, message in checks:
        node = cfg.get(section)
        if node is None:
            continue
        try:
            if not ok(node):
                problems.append(message.format(**OmegaConf.to_container(node, resolve=True)))
        except (TypeError, ValueError):
            continue
    return problems


LIST_KEYS = ("data.exports", "data.me", "data.languages")


def _listify_single_strings(cfg: DictConfig) -> None:
    for key in LIST_KEYS:
        section, _, leaf = key.rpartition(".")
        node = cfg.get(section)
        if isinstance(node, DictConfig) and isinstance(node.get(leaf), str):
            node[leaf] = [node[leaf]]


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _devices(value: Any) -> bool:
    if value == "auto" or (_int(value) and (value == -1 or value > 0)):
        return True
    if isinstance(value, str):
        return bool(re.fullmatch(r"\s*\d+\s*(,\s*\d+\s*)*,?", value)) or value.strip() == "-1"
    return isinstance(value, Sequence) and len(value) > 0 and all(_int(v) and v >= 0 for v in value)


_ABSENT = object()

# (key, accepted?, what is accepted): checked only when the key is present in the composed config.
VALUE_RULES: tuple[tuple[str, Callable[[Any], bool], str], ...] = (
    ("trainer.max_steps", lambda v: _int(v) and (v == -1 or v > 0), "-1 (no limit) or a positive integer"),
    ("trainer.max_epochs", lambda v: v is None or (_int(v) and (v == -1 or v > 0)), "-1 (no limit) or a positive integer"),
    ("trainer.devices", _devices, "a positive integer, -1 (all), auto, or a list of device ids"),
    ("trainer.num_nodes", lambda v: _int(v) and v > 0, "a positive integer"),
    ("trainer.accumulate_grad_batches", lambda v: _int(v) and v > 0, "a positive integer"),
    ("trainer.val_check_interval", lambda v: (_int(v) and v > 0) or (_number(v) and 0 < v <= 1),
     "a positive step count or a fraction of an epoch in (0, 1]"),
    ("trainer.check_val_every_n_epoch", lambda v: v is None or (_int(v) and v > 0), "a positive integer or null"),
    ("trainer.gradient_clip_val", lambda v: v is None or (_number(v) and v >= 0), "a number >= 0 or null"),
    ("optimizer.lr", lambda v: _number(v) and v > 0, "a number > 0, e.g. 2e-4"),
    ("optimizer.weight_decay", lambda v: _number(v) and v >= 0, "a number >= 0"),
    ("datamodule.batch_size", lambda v: _int(v) and v > 0, "a positive integer"),
    ("datamodule.eval_batch_size", lambda v: _int(v) and v > 0, "a positive integer"),
    ("lora.alpha", lambda v: _number(v) and v > 0, "a number > 0 (usually 2 x lora.r)"),
    ("callbacks.model_checkpoint.last_every_n_steps", lambda v: _int(v) and v >= 0, "an integer >= 0 (0: only at the end)"),
    ("callbacks.early_stopping.patience", lambda v: _int(v) and v >= 0, "an integer >= 0"),
    ("callbacks.stop_at.step", lambda v: _int(v) and v > 0, "a positive integer"),
)


def _value_problems(cfg: DictConfig) -> list[str]:
    """Out-of-range or wrongly typed values of the trainer/optimizer/datamodule/callback keys."""
    problems = []
    for key, accepted, requirement in VALUE_RULES:
        try:
            value = OmegaConf.select(cfg, key, default=_ABSENT, throw_on_resolution_failure=True)
        except Exception:
            continue
        if value is _ABSENT:
            continue
        if isinstance(value, (DictConfig, ListConfig)):
            value = OmegaConf.to_container(value, resolve=True)
        if not accepted(value):
            problems.append(f"{key}={value!r} must be {requirement}")
    return problems


def _missing_exports(cfg: DictConfig) -> list[str]:
    exports = OmegaConf.select(cfg, "data.exports", default=None)
    if not isinstance(exports, ListConfig):
        return []
    missing = [str(p) for p in exports if isinstance(p, str) and not Path(p).expanduser().exists()]
    if not missing:
        return []
    from replica.privacy import display_path  # export names carry contacts' names

    missing = [display_path(p) for p in missing]
    return [f"data.exports: no such file or folder: {', '.join(missing)} (give your chat export files, folders or zips)"]


def _check_section(prefix: str, schema: type, node: Any) -> list[str]:
    if not isinstance(node, (DictConfig, Mapping)):
        return [f"{prefix} must be a mapping"]
    problems = []
    known = {f.name: f for f in fields(schema)}
    for key in node:
        if key not in known:
            problems.append(f"{prefix}.{key} is not a valid key (valid keys: {', '.join(sorted(known))})")
            continue
        if isinstance(known[key].default_factory, type) and hasattr(known[key].default_factory, "__dataclass_fields__"):
            problems += _check_section(f"{prefix}.{key}", known[key].default_factory, node[key])
            continue
        try:
            OmegaConf.merge(OmegaConf.structured(schema), {key: OmegaConf.to_container(node, resolve=True)[key]})
        except Exception as err:  # omegaconf ValidationError and friends
            problems.append(f"{prefix}.{key}: {_first_line(err).split(' full_key')[0]}")
    return problems


def check_overrides(config_name: str, argv: Sequence[str]) -> None:
    """Before Hydra starts: unknown override keys fail with the valid keys of their section listed."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    args = [a for a in argv if not a.startswith("-")]
    try:
        overrides = OverridesParser.create().parse_overrides(args)
    except Exception as err:
        raise ReplicaInputError(f"bad override: {_first_line(err)}") from None
    groups = {p.name for p in CONF_DIR.iterdir() if p.is_dir()}
    chosen = []
    for ov in overrides:
        key = ov.key_or_group
        if key.split(".")[0] in groups and "." not in key and not ov.is_sweep_override():
            chosen.append(ov.input_line)
    cfg = compose(config_name, chosen, output_dir=".")
    problems = []
    for ov in overrides:
        key = ov.key_or_group
        if key.startswith("hydra") or (key in groups and "." not in key) or ov.is_add() or ov.is_force_add():
            continue
        parent, _, leaf = key.rpartition(".")
        node = OmegaConf.select(cfg, parent) if parent else cfg
        if not isinstance(node, DictConfig) or leaf not in node.keys():
            valid = ", ".join(sorted(str(k) for k in node)) if isinstance(node, DictConfig) else "none"
            problems.append(
                f"{key} is not a config key (valid keys under {parent or 'the top level'}: {valid}; "
                f"to add a new key use +{key}=…)"
            )
    if problems:
        raise ReplicaInputError("; ".join(problems))
