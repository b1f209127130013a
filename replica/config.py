"""The Hydra config tree: where it lives, composing it outside `@hydra.main`, and validating it up front.

Every section has one validator (`SECTION_VALIDATORS`): `validate` runs them all on the composed tree, and
`replica.prepare.config` runs the `data` one on a data section alone, so train.py, evaluate.py and `replica prepare`
give the same answer. The validators apply the rules the sections' fields carry (`replica.settings`); the run keys
that have no section dataclass (trainer, optimizer, datamodule, callbacks) have theirs in `RUN_RULES`.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import fields, is_dataclass
from functools import partial
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict

from replica.errors import ReplicaInputError
from replica.privacy import name_key
from replica.settings import (
    SAMPLING_KEYS,
    SECTIONS,
    DataSection,
    FeedbackSection,
    GenerationSection,
    Rule,
    is_int,
    is_number,
    is_required,
    keys_of,
    number,
    whole,
)

ROOT_DIR = Path(__file__).resolve().parents[1]
CONF_DIR = ROOT_DIR / "conf"
SCHEMA_GROUP = "schema"  # ConfigStore group of the sections whose defaults live in replica.settings


def register_configs() -> None:
    """What composing `conf/` needs besides its files: the `replica_root` resolver and the `generation` schema
    (train.yaml's defaults list takes `schema/generation`). Entry points call it before Hydra starts."""
    from hydra.core.config_store import ConfigStore

    if not OmegaConf.has_resolver("replica_root"):
        OmegaConf.register_new_resolver("replica_root", lambda: str(ROOT_DIR))
    ConfigStore.instance().store(group=SCHEMA_GROUP, name="generation", node=GenerationSection)
    ConfigStore.instance().store(group=SCHEMA_GROUP, name="feedback", node=FeedbackSection)


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

    register_configs()
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3", job_name=config_name):
            cfg = hydra_compose(config_name=config_name, overrides=hide_names_in_overrides(overrides),
                                return_hydra_config=True)
    except (HydraException, ValueError) as err:  # a wrong type in a typed section is a ValidationError
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


# ---- validation: one validator per section ------------------------------------------------------------------


def normalize(cfg: DictConfig) -> None:
    """The user's shorthands, in place, before `validate`: a single string where a list is expected
    (`data.exports=/path`, `data.me=Léa`) becomes a one-element list, and `data.relationships`' names become their
    `name_key` (`hide_relationship_names`)."""
    _listify_single_strings(cfg)
    hide_relationship_names(cfg)


def validate(cfg: DictConfig) -> None:
    """Run every section's validator on the composed tree and check that the exports exist; one line for all.
    It changes nothing (`normalize` first)."""
    problems: list[str] = []
    for section, validator in SECTION_VALIDATORS.items():
        node = cfg.get(section)
        if node is None:
            continue
        try:
            plain = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node
        except Exception as err:  # an interpolation that does not resolve
            problems.append(f"{section}: {_first_line(err)}")
            continue
        problems += validator(plain)
    problems += key_problems(cfg, RUN_RULES)
    problems += _missing_exports(cfg)
    if problems:
        raise ReplicaInputError("invalid config: " + "; ".join(problems))


def hide_relationship_names(cfg: DictConfig) -> None:
    """Replace the contact and chat names of `data.relationships` by their `name_key`, in place: every copy of the
    config Replica writes (dataset manifest, run record, adapter, logger hyperparameters) then holds no name."""
    data = cfg.get("data")
    names = data.get("relationships") if isinstance(data, DictConfig) else None
    if isinstance(names, DictConfig) and names:
        with open_dict(cfg):
            data.relationships = {name_key(str(name)): label for name, label in names.items()}


RELATIONSHIPS_KEY = "data.relationships"


def hide_names_in_overrides(argv: Sequence[str]) -> list[str]:
    """`data.relationships={...}` on a command line with its names replaced by their `name_key`, before Hydra
    records the overrides; the mapping replaces any the config sets. The value is read as YAML first, so quoted and
    non-ASCII names work (`{Mum: family, 'Zoë Müller': friend}`), which Hydra's own grammar refuses as keys;
    anything that is not a mapping is left for the validators to report."""
    import yaml

    hidden = []
    for arg in argv:
        key, equals, text = arg.partition("=")
        if not equals or key.lstrip("+~") != RELATIONSHIPS_KEY:
            hidden.append(arg)
            continue
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            value = None
        if not isinstance(value, Mapping) or not value:
            hidden.append(arg)
            continue
        pairs = ", ".join(f"{name_key(str(name))}: {_quoted(str(label))}" for name, label in value.items())
        if key == RELATIONSHIPS_KEY:  # replace the labels a data config sets (Hydra would merge the two mappings)
            hidden.append(f"{key}=null")
        hidden.append(f"{key}={{{pairs}}}")
    return hidden


def _quoted(text: str) -> str:
    """A Hydra override string literal."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def data_problems(data: Any) -> list[str]:
    """The `data` section's problems, the first one of each key; a missing key is named once, in one entry."""
    if not isinstance(data, Mapping):
        return ["data must be a mapping of keys (see conf/data/default.yaml)"]
    missing = [f"data.{key}" for key in keys_of(DataSection) if key not in data and is_required(DataSection, key)]
    problems = [f"missing {', '.join(missing)} (see conf/data/default.yaml)"] if missing else []
    known = keys_of(DataSection)
    problems += [f"data.{key} is not a valid key (valid keys: {', '.join(sorted(known))})" for key in data
                 if key not in known]
    problems += _rule_problems("data", DataSection, data)

    def sound(*keys: str) -> bool:
        return all(key in data and not any(p.startswith(f"data.{key}=") for p in problems) for key in keys)

    if sound("context_min", "context_max") and data["context_min"] > data["context_max"]:
        problems.append(f"data.context_min={data['context_min']} is above data.context_max={data['context_max']}")
    if sound("split"):
        split = data["split"]
        if not math.isclose(sum(split), 1.0, abs_tol=1e-6):
            problems.append(f"data.split={split} sums to {sum(split):g}, must sum to 1")
        elif split[0] <= 0:
            problems.append(f"data.split={split} leaves train empty")
    return problems


def _rule_problems(label: str, schema: type, node: Mapping) -> list[str]:
    """Each given key's rule (`replica.settings`), nested sections (`data.mask`) included; unknown nested keys too."""
    problems = []
    for key, value in node.items():
        spec = schema.__dataclass_fields__.get(key)
        if spec is None:
            continue
        nested = spec.default_factory
        if is_dataclass(nested):
            if not isinstance(value, Mapping):
                problems.append(f"{label}.{key} must map {', '.join(keys_of(nested))} to their values")
                continue
            unknown = [name for name in value if name not in nested.__dataclass_fields__]
            problems += [f"{label}.{key}.{name} is not a valid key (valid keys: {', '.join(keys_of(nested))})"
                         for name in unknown]
            problems += _rule_problems(f"{label}.{key}", nested, value)
        elif (rule := spec.metadata.get("rule")) and (problem := rule.problem(f"{label}.{key}", value)):
            problems.append(problem)
    return problems


def section_problems(section: str, node: Any, *, label: str | None = None) -> list[str]:
    """A typed section's problems: unknown keys, wrong types, and each key's rule (`replica.settings`); keys are
    named `<label>.<key>` (the section's own name unless the keys were given elsewhere)."""
    label = label or section
    problems = _typed_problems(label, SECTIONS[section], node)
    if problems or not isinstance(node, Mapping):
        return problems
    return _rule_problems(label, SECTIONS[section], node)


def sampling_problems(node: Any, label: str) -> list[str]:
    """The generation validator on the sampling keys `node` gives (evaluate.py's `decoding`; null = the run's)."""
    given = {key: value for key, value in dict(node).items() if key in SAMPLING_KEYS and value is not None}
    return section_problems("generation", given, label=label)


def _typed_problems(prefix: str, schema: type, node: Any) -> list[str]:
    """Unknown keys and values of the wrong type, checked against the section's dataclass."""
    if not isinstance(node, Mapping):
        return [f"{prefix} must be a mapping"]
    problems = []
    known = {spec.name: spec for spec in fields(schema)}
    typed = OmegaConf.structured(schema)
    OmegaConf.set_readonly(typed, False)  # a frozen dataclass (RoleTokens) is read-only as a config
    for key, value in node.items():
        if key not in known:
            problems.append(f"{prefix}.{key} is not a valid key (valid keys: {', '.join(sorted(known))})")
            continue
        nested = known[key].default_factory
        if is_dataclass(nested):
            problems += _typed_problems(f"{prefix}.{key}", nested, value)
            continue
        try:
            OmegaConf.merge(typed, {key: value})
        except Exception as err:  # omegaconf ValidationError and friends
            problems.append(f"{prefix}.{key}: {_first_line(err).split(' full_key')[0]}")
    return problems


def model_problems(node: Any) -> list[str]:
    """The `model` section's rules, and a base named while `model=tiny` (the default) would build its own instead."""
    problems = section_problems("model", node)
    if not problems and node.get("tiny") and node.get("name_or_path"):
        problems.append(
            "model.name_or_path is set but would be ignored: the default model=tiny builds a tiny model "
            "of its own; choose the preset of the file's family too (model=qwen2.5-7b, llama3.1-8b, mistral7b, "
            "smollm2-135m...), e.g. python train.py model=qwen2.5-7b model.name_or_path=<file or Hub id>")
    return problems


SECTION_VALIDATORS: dict[str, Callable[[Any], list[str]]] = {
    "data": data_problems,
    **{section: partial(section_problems, section) for section in ("lora", "quant", "generation", "feedback")},
    "model": model_problems,
}
LIST_KEYS = ("data.exports", "data.me", "data.languages")


def _listify_single_strings(cfg: DictConfig) -> None:
    for key in LIST_KEYS:
        section, _, leaf = key.rpartition(".")
        node = cfg.get(section)
        if isinstance(node, DictConfig) and isinstance(node.get(leaf), str):
            node[leaf] = [node[leaf]]


def _devices(value: Any) -> bool:
    if value == "auto" or (is_int(value) and (value == -1 or value > 0)):
        return True
    if isinstance(value, str):
        return bool(re.fullmatch(r"\s*\d+\s*(,\s*\d+\s*)*,?", value)) or value.strip() == "-1"
    return isinstance(value, Sequence) and len(value) > 0 and all(is_int(v) and v >= 0 for v in value)


_ABSENT = object()
POSITIVE = whole(1, "a positive integer")

# The run sections (trainer, optimizer, datamodule, callbacks): checked only when the key is in the composed config.
RUN_RULES: dict[str, Rule] = {
    "trainer.max_steps": Rule(lambda v: is_int(v) and (v == -1 or v > 0), "-1 (no limit) or a positive integer"),
    "trainer.max_epochs": Rule(lambda v: v is None or (is_int(v) and (v == -1 or v > 0)),
                               "-1 (no limit) or a positive integer"),
    "trainer.devices": Rule(_devices, "a positive integer, -1 (all), auto, or a list of device ids"),
    "trainer.num_nodes": POSITIVE,
    "trainer.accumulate_grad_batches": POSITIVE,
    "trainer.val_check_interval": Rule(lambda v: (is_int(v) and v > 0) or (is_number(v) and 0 < v <= 1),
                                       "a positive step count or a fraction of an epoch in (0, 1]"),
    "trainer.check_val_every_n_epoch": Rule(lambda v: v is None or (is_int(v) and v > 0), "a positive integer or null"),
    "trainer.gradient_clip_val": Rule(lambda v: v is None or (is_number(v) and v >= 0), "a number >= 0 or null"),
    "optimizer.lr": number("a number > 0, e.g. 2e-4", lambda v: v > 0),
    "from_run_lr_scale": number("a number in (0, 1] (1: the parent's learning rate)", lambda v: 0 < v <= 1),
    "optimizer.weight_decay": number("a number >= 0", lambda v: v >= 0),
    "datamodule.batch_size": POSITIVE,
    "datamodule.eval_batch_size": POSITIVE,
    "callbacks.model_checkpoint.last_every_n_steps": whole(0, "an integer >= 0 (0: only at the end)"),
    "callbacks.early_stopping.patience": whole(0),
    "callbacks.stop_at.step": POSITIVE,
}


def key_problems(cfg: DictConfig, rules: Mapping[str, Rule]) -> list[str]:
    """Each `rules` key the config holds that breaks its rule (keys it does not hold are not checked)."""
    problems = []
    for key, rule in rules.items():
        try:
            value = OmegaConf.select(cfg, key, default=_ABSENT, throw_on_resolution_failure=True)
        except Exception:
            continue
        if value is _ABSENT:
            continue
        if isinstance(value, (DictConfig, ListConfig)):
            value = OmegaConf.to_container(value, resolve=True)
        if problem := rule.problem(key, value):
            problems.append(problem)
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


# Hydra's own flags that take the next argument as their value (`python train.py --cfg job`).
HYDRA_FLAGS_WITH_VALUE = frozenset(
    {"--cfg", "-c", "--package", "-p", "--config-path", "-cp", "--config-name", "-cn", "--config-dir", "-cd",
     "--experimental-rerun"}
)


def override_args(argv: Sequence[str]) -> list[str]:
    """The overrides of a command line: without Hydra's flags (`-m`, `--cfg job`, ...) and their values."""
    args, value_next = [], False
    for arg in argv:
        if not value_next and not arg.startswith("-"):
            args.append(arg)
        value_next = arg in HYDRA_FLAGS_WITH_VALUE
    return args


def check_overrides(config_name: str, argv: Sequence[str]) -> None:
    """Before Hydra starts: unknown override keys fail with the valid keys of their section listed."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    args = hide_names_in_overrides(override_args(argv))
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
