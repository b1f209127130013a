"""The typed config sections: every key's type, its allowed choices, and the defaults the code itself relies on.

One dataclass per section, read by every module that needs the section (`replica.config` validates against them,
the pipeline, the model loader, inference and the commands read them). This module imports nothing heavy, so the
ingest layer (`replica parse`) can take its choices from here without loading OmegaConf or Hydra.

Where the values live: `data`, `lora`, `quant` and `model` take theirs from `conf/<group>/*.yaml` (these
dataclasses give types only); `mask`, `model.role_tokens` and `generation` have their defaults here, because code
builds them without a config (a merged model folder, a masker for file names), and `conf/train.yaml` takes the
`generation` defaults from `GenerationSection` through Hydra's ConfigStore (`replica.config.register_configs`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
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


@dataclass
class MaskSection:
    """Which kinds of personal data the masker replaces (all of them unless switched off)."""

    phones: bool = True
    emails: bool = True
    urls: bool = True
    iban: bool = True
    cards: bool = True
    names: bool = True


@dataclass
class DataSection:
    """The `data` group: which exports, whose voice, cleaning, masking, windowing and split."""

    exports: list[str] = field(default_factory=list)
    me: list[str] = field(default_factory=list)
    datasets_dir: str = REQUIRED
    max_input_mib: int = REQUIRED  # type: ignore[assignment]
    max_messages: int = REQUIRED  # type: ignore[assignment]
    date_order: str = REQUIRED
    timezone: Any = None  # an IANA zone name such as Europe/Rome; null = the machine's zone (or REPLICA_TZ)
    media: str = REQUIRED
    mask: MaskSection = field(default_factory=MaskSection)
    phone_region: str = REQUIRED
    languages: list[str] = field(default_factory=list)
    language_sample: int = REQUIRED  # type: ignore[assignment]
    merge_gap: float = REQUIRED  # type: ignore[assignment]
    session_gap: float = REQUIRED  # type: ignore[assignment]
    context_min: int = REQUIRED  # type: ignore[assignment]
    context_max: int = REQUIRED  # type: ignore[assignment]
    split: list[float] = field(default_factory=list)
    seed: int = REQUIRED  # type: ignore[assignment]
    format: str = REQUIRED
    max_length: int = REQUIRED  # type: ignore[assignment]
    relationships: Any = None  # contact or chat (as `replica senders` shows it) -> label; null = none listed
    relationship_in_prompt: bool = True  # the prompt says who you are talking to (false: the ablation)


@dataclass
class LoraSection:
    r: int = REQUIRED  # type: ignore[assignment]
    alpha: int = REQUIRED  # type: ignore[assignment]
    dropout: float = REQUIRED  # type: ignore[assignment]
    bias: str = REQUIRED
    target_modules: Any = REQUIRED
    train_new_tokens: bool = REQUIRED  # type: ignore[assignment]


@dataclass
class QuantSection:
    mode: str = REQUIRED
    double_quant: bool = REQUIRED  # type: ignore[assignment]
    compute_dtype: str = REQUIRED
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
    dtype: str = REQUIRED
    attn_implementation: Any = None
    role_tokens: RoleTokens = field(default_factory=RoleTokens)
    tiny: Any = None


@dataclass
class GenerationSection:
    """The one sampling block: how `replica chat`, `replica serve`, evaluate.py and stop-sequence evaluation
    generate replies. A run records it; chat/serve/evaluate start from the run's block, their flags override it."""

    max_new_tokens: int = 64
    do_sample: bool = True  # false: chat, serve and evaluate's replies pick the most likely token
    temperature: float = 0.8
    top_p: float = 0.95
    top_k: int = 0  # 0: no top-k cut
    repetition_penalty: float = 1.0
    seed: int = 0
    stop_eval: str = "greedy"  # greedy | sample: how the clean-stop rate is measured during training
    engine: str = "auto"  # auto | transformers | llama_cpp: auto = llama.cpp on CPU, transformers on a GPU
    engine_quant: str = "q8_0"  # weights of the run's GGUF for the llama.cpp engine (docs/serving.md: quality kept)

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


SECTIONS: dict[str, type] = {
    "data": DataSection,
    "lora": LoraSection,
    "quant": QuantSection,
    "model": ModelSection,
    "generation": GenerationSection,
}
CHOICES: dict[str, tuple[str, ...]] = {
    "data.date_order": DATE_ORDERS,
    "data.media": MEDIA_MODES,
    "data.format": DATA_FORMATS,
    "quant.mode": QUANT_MODES,
    "quant.compute_dtype": DTYPE_NAMES,
    "model.dtype": DTYPE_NAMES,
    "generation.stop_eval": STOP_EVAL_DECODING,
    "generation.engine": ENGINES,
    "generation.engine_quant": ENGINE_QUANTS,
}
