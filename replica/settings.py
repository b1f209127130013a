"""The typed config sections: every key's type, its rule (what it accepts, in words), and the defaults the code relies on.

This module is the settings' single home: a key's rule sits on its field (`setting(..., rule=...)`), and the config
validator (`replica.config`), the `replica` flag types (`replica.commands.arguments.setting`) and the pipeline all
read it from here. One dataclass per section; it imports nothing heavy, so the ingest layer (`replica parse`) can
take its choices from here without loading OmegaConf or Hydra.

Where the values live: `data`, `lora`, `quant` and `model` take theirs from `conf/<group>/*.yaml` (these
dataclasses give types and rules only); `mask`, `model.role_tokens` and `generation` have their defaults here,
because code builds them without a config (a merged model folder, a masker for file names), and `conf/train.yaml`
takes the `generation` defaults from `GenerationSection` through Hydra's ConfigStore (`replica.config.register_configs`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

REQUIRED = "???"  # OmegaConf's MISSING: the value comes from the YAML group file

DATE_ORDERS = ("auto", "dmy", "mdy", "ymd")  # WhatsApp day/month order: auto = decided per file
MEDIA_MODES = ("tag", "drop")
DATA_FORMATS = ("auto", "role_tokens", "plain", "chat_template")
QUANT_MODES = ("nf4", "fp4", "none")
DTYPE_NAMES = ("bfloat16", "float16", "float32")
STOP_EVAL_DECODING = ("greedy", "sample")  # how the stop-sequence callback decodes its validation replies
ENGINES = ("auto", "transformers", "llama_cpp")  # what generates replies; auto = llama.cpp on CPU, transformers on GPU
ENGINE_QUANTS = ("q8_0", "f16", "f32")  # the weights of the GGUF file the llama.cpp engine builds for a run
SPLITS = ("train", "val", "test")  # a prepared dataset's splits, in this order


@dataclass(frozen=True)
class Rule:
    """What one setting accepts: `accepts(value)`, and `requirement` saying it in words for the one-line error."""

    accepts: Callable[[Any], bool]
    requirement: str
    complaint: str = "must be"  # the words between `key=value` and the requirement
    says: str | None = None  # the whole problem instead, `{key}` standing for the key

    def problem(self, key: str, value: Any) -> str | None:
        """`key=value must be ...` (or what `says` says) when the value breaks the rule, else None."""
        if self.accepts(value):
            return None
        return self.says.format(key=key) if self.says else f"{key}={value!r} {self.complaint} {self.requirement}"


@dataclass(frozen=True)
class Rules:
    """Several rules on one key, checked in order: the first broken one is the key's problem."""

    rules: tuple[Rule, ...]

    @property
    def requirement(self) -> str:
        return " and ".join(rule.requirement for rule in self.rules)

    def accepts(self, value: Any) -> bool:
        return all(rule.accepts(value) for rule in self.rules)

    def problem(self, key: str, value: Any) -> str | None:
        return next((problem for rule in self.rules if (problem := rule.problem(key, value))), None)


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """A real int or float: not a bool, NaN or infinity."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def whole(minimum: int, requirement: str | None = None) -> Rule:
    return Rule(lambda v: is_int(v) and v >= minimum, requirement or f"an integer >= {minimum}")


def number(requirement: str, accepts: Callable[[float], bool]) -> Rule:
    return Rule(lambda v: is_number(v) and accepts(v), requirement)


def one_of(choices: tuple[str, ...]) -> Rule:
    return Rule(lambda v: v in choices, "one of " + "|".join(choices))


def known_zone(name: Any) -> bool:
    """An IANA time zone this machine knows, or None (the machine's own zone)."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    if name is None:
        return True
    try:
        return isinstance(name, str) and ZoneInfo(name) is not None
    except (ZoneInfoNotFoundError, ValueError):
        return False


def known_region(region: Any) -> bool:
    import phonenumbers

    return isinstance(region, str) and region.upper() in phonenumbers.SUPPORTED_REGIONS


def string_list(value: Any) -> bool:
    """A list of strings; a single string counts as a one-element list (`data.me=Léa`)."""
    return isinstance(value, str) or (isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value))


def fractions(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and len(value) == 3 and all(is_number(v) and v >= 0 for v in value)


def labels_by_name(value: Any) -> bool:
    return value is None or (isinstance(value, Mapping) and all(isinstance(v, str) for v in value.values()))


BOOLEAN = Rule(lambda v: isinstance(v, bool), "true or false")


def setting(default: Any = REQUIRED, *, rule: Rule | Rules | None = None, factory: Callable[[], Any] | None = None) -> Any:
    """A section field with its rule (read back by `rule_of`)."""
    metadata = {"rule": rule} if rule else {}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
class MaskSection:
    """Which kinds of personal data the masker replaces (all of them unless switched off)."""

    phones: bool = setting(True, rule=BOOLEAN)
    emails: bool = setting(True, rule=BOOLEAN)
    urls: bool = setting(True, rule=BOOLEAN)
    iban: bool = setting(True, rule=BOOLEAN)
    cards: bool = setting(True, rule=BOOLEAN)
    names: bool = setting(True, rule=BOOLEAN)


@dataclass
class DataSection:
    """The `data` group: which exports, whose voice, cleaning, masking, windowing and split."""

    exports: list[str] = setting(factory=list, rule=Rules((
        Rule(string_list, "a list of export paths"),
        Rule(bool, "not empty", says="{key} is empty: pass data.exports=[path/to/export, ...]"),
    )))
    me: list[str] = setting(factory=list, rule=Rule(string_list, "a list of your sender names"))
    datasets_dir: str = setting(rule=Rule(lambda v: isinstance(v, str) and bool(v), "a directory path"))
    max_input_mib: int = setting(rule=whole(1))
    max_messages: int = setting(rule=whole(1))
    date_order: str = setting(rule=one_of(DATE_ORDERS))
    # an IANA zone name such as Europe/Rome; null = the machine's zone (or REPLICA_TZ)
    timezone: Any = setting(None, rule=Rule(known_zone, "not a known time zone: use an IANA name such as Europe/Rome, "
                                                      "or null for this machine's zone", complaint="is"))
    media: str = setting(rule=one_of(MEDIA_MODES))
    mask: MaskSection = setting(factory=MaskSection)
    phone_region: str = setting(rule=Rule(known_region, "a two-letter region code such as IT, US, GB"))
    languages: list[str] = setting(factory=list, rule=Rule(string_list, "a list of ISO 639-1 codes such as [it, en]"))
    language_sample: int = setting(rule=whole(1))
    merge_gap: float = setting(rule=number("a number of minutes >= 0", lambda v: v >= 0))
    session_gap: float = setting(rule=number("a number of hours > 0", lambda v: v > 0))
    context_min: int = setting(rule=whole(1))
    context_max: int = setting(rule=whole(1))
    split: list[float] = setting(factory=list, rule=Rule(fractions, "three fractions [train, val, test] >= 0"))
    # a prepared dataset folder whose examples keep their split (a continued run's parent dataset); null = none
    keep_splits_of: Any = setting(None, rule=Rule(lambda v: v is None or (isinstance(v, str) and bool(v)),
                                                  "a prepared dataset folder, or null"))
    seed: int = setting(rule=Rule(is_int, "an integer"))
    format: str = setting(rule=one_of(DATA_FORMATS))
    max_length: int = setting(rule=whole(1))
    # contact or chat (as `replica senders` shows it) -> label; null = none listed
    relationships: Any = setting(None, rule=Rule(labels_by_name, "a mapping of names to labels", says=(
        "{key} must map names to labels, e.g. data.relationships=\"{{Mum: family, 'Jake Miller': friend}}\"")))
    # the prompt says who you are talking to (false: the ablation)
    relationship_in_prompt: bool = setting(True, rule=BOOLEAN)


@dataclass
class LoraSection:
    r: int = setting(rule=whole(1, "a positive integer"))
    alpha: int = setting(rule=number("a number > 0 (usually 2 x lora.r)", lambda v: v > 0))
    dropout: float = setting(rule=number("a number in [0, 1)", lambda v: 0 <= v < 1))
    bias: str = REQUIRED
    target_modules: Any = REQUIRED
    train_new_tokens: bool = REQUIRED  # type: ignore[assignment]


@dataclass
class QuantSection:
    mode: str = setting(rule=one_of(QUANT_MODES))
    double_quant: bool = REQUIRED  # type: ignore[assignment]
    compute_dtype: str = setting(rule=one_of(DTYPE_NAMES))
    quant_storage: str = REQUIRED


@dataclass(frozen=True)
class RoleTokens:
    """Strings of the role markers, the end-of-turn marker and the padding token (`model.role_tokens`)."""

    me: str = "<|me|>"
    them: str = "<|them|>"
    eot: str = "<|eot|>"
    pad: str = "<|pad|>"


@dataclass
class ModelSection:
    name_or_path: Any = None
    revision: Any = None
    trust_remote_code: bool = False
    dtype: str = setting(rule=one_of(DTYPE_NAMES))
    attn_implementation: Any = None
    role_tokens: RoleTokens = field(default_factory=RoleTokens)
    tiny: Any = None


@dataclass
class GenerationSection:
    """The one sampling block: how `replica chat`, `replica serve`, evaluate.py and stop-sequence evaluation
    generate replies. A run records it; chat/serve/evaluate start from the run's block, their flags override it."""

    max_new_tokens: int = setting(64, rule=whole(1, "a positive integer"))
    do_sample: bool = True  # false: chat, serve and evaluate's replies pick the most likely token
    temperature: float = setting(0.8, rule=number("a number > 0", lambda v: v > 0))
    top_p: float = setting(0.95, rule=number("a number in (0, 1]", lambda v: 0 < v <= 1))
    top_k: int = setting(0, rule=whole(0, "an integer >= 0 (0: no top-k cut)"))
    repetition_penalty: float = setting(1.0, rule=number("a number > 0 (1: none)", lambda v: v > 0))
    seed: int = 0
    # greedy | sample: how the clean-stop rate is measured during training
    stop_eval: str = setting("greedy", rule=one_of(STOP_EVAL_DECODING))
    # auto | transformers | llama_cpp: auto = llama.cpp on CPU, transformers on a GPU
    engine: str = setting("auto", rule=one_of(ENGINES))
    # weights of the run's GGUF for the llama.cpp engine (docs/serving.md: quality kept)
    engine_quant: str = setting("q8_0", rule=one_of(ENGINE_QUANTS))

    @classmethod
    def of_run(cls, config: Mapping[str, Any] | None) -> GenerationSection:
        """The block a run (or merged folder) recorded; the defaults where it recorded none.

        A run recorded before this block drove chat and serve holds no `stop_eval`: its `do_sample` (false) then
        described stop-sequence evaluation only, and chat, serve and evaluate sampled as the defaults say."""
        block = dict((config or {}).get("generation") or {})
        if "stop_eval" not in block:
            block["stop_eval"] = "sample" if block.pop("do_sample", False) else "greedy"
        return cls(**{key: value for key, value in block.items() if key in cls.__dataclass_fields__})

    def under(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """`given` (evaluate.py's `decoding`) with every key of this block that it leaves null taken from the block."""
        return {
            key: getattr(self, key) if value is None and key in self.__dataclass_fields__ else value
            for key, value in given.items()
        }


@dataclass
class FeedbackSection:
    """How a run continued with `from_run=` learns its parent's feedback (`replica chat` /fix, the web chat, the API)."""

    weight: float = setting(3.0, rule=number("a number >= 0 (0: corrections are not learned)", lambda v: v >= 0))
    # the share of train rows feedback makes up: each entry is repeated as often as that takes (at least once)
    share: float = setting(0.25, rule=number("a number in [0, 1) (0: each entry once)", lambda v: 0 <= v < 1))
    include_good: bool = setting(True, rule=BOOLEAN)  # replies marked good are learned too, at the same weight
    preference: bool = setting(False, rule=BOOLEAN)  # also a DPO loss on correction-over-reply pairs
    beta: float = setting(0.1, rule=number("a number > 0", lambda v: v > 0))  # DPO's KL strength
    preference_weight: float = setting(1.0, rule=number("a number > 0", lambda v: v > 0))  # DPO loss x this
    preference_batch: int = setting(4, rule=whole(1, "a positive integer"))  # pairs per training step


SECTIONS: dict[str, type] = {
    "data": DataSection,
    "lora": LoraSection,
    "quant": QuantSection,
    "model": ModelSection,
    "generation": GenerationSection,
    "feedback": FeedbackSection,
}
SAMPLING_KEYS = ("max_new_tokens", "temperature", "top_p", "top_k", "repetition_penalty")  # what a request may set


def rule_of(section: str, key: str) -> Rule | Rules | None:
    """The rule of `section.key` (`data.mask.urls` style keys reach nested sections), or None when it has none."""
    schema: Any = SECTIONS[section]
    *parents, leaf = key.split(".")
    for parent in parents:
        schema = schema.__dataclass_fields__[parent].default_factory
    spec = schema.__dataclass_fields__.get(leaf)
    return spec.metadata.get("rule") if spec else None


def require(key: str, value: Any, *, path: str | None = None) -> None:
    """For a function a caller may reach without a validated config: raise the one-line error of `key`'s rule
    (`data.date_order`) when `value` breaks it."""
    from replica.errors import ReplicaInputError

    section, _, leaf = key.partition(".")
    problem = rule_of(section, leaf).problem(key, value)
    if problem:
        raise ReplicaInputError(problem, path=path)


def is_required(schema: type, key: str) -> bool:
    """A key every config must hold: one whose value comes from the YAML group file (no plain default in the code)."""
    spec = schema.__dataclass_fields__[key]
    return spec.default is MISSING or spec.default == REQUIRED


def keys_of(schema: type) -> list[str]:
    return [spec.name for spec in fields(schema)]
