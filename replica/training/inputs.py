"""What a run is built from, resolved before any Lightning object exists: its dataset, base model and chat format.

The datamodule, the module and the callbacks each receive the pieces they need at construction.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from replica.atomic import read_jsonl, write_json
from replica.errors import ReplicaInputError
from replica.model.base_model import load_tokenizer, resolve_model_path, role_tokens
from replica.model.formatting import ChatFormatter, resolve_format
from replica.prepare.config import parse_data_config
from replica.prepare.pipeline import prepare_dataset
from replica.prepare.relationships import OTHER
from replica.prepare.store import (
    PreparedDataset,
    dataset_folder,
    dataset_identity,
    open_dataset,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunInputs:
    """The prepared dataset, the base model's folder (or Hub id), its tokenizer and the chat formatter."""

    dataset: PreparedDataset
    base_path: str
    tokenizer: Any
    formatter: ChatFormatter


def resolve_inputs(cfg: DictConfig, record_path: Path | None, *, build: bool = True,
                   base_path: str | None = None) -> RunInputs:
    """The run's dataset (built or reused when `build`, else the one another rank published; its identity recorded
    at `record_path`), its base model (`base_path` when given, e.g. a continued run's parent's; the tiny one is
    built from the train split) and the chat format."""
    dataset = prepare_run_dataset(cfg.data, record_path) if build else published_dataset(cfg.data)
    base_path = base_path or resolve_model_path(cfg.model, lambda: train_texts(dataset), cfg.paths.cache_dir)
    tokenizer = load_tokenizer(base_path, cfg.model, cfg.data.format)
    style = resolve_format(cfg.data.format, tokenizer)
    formatter = ChatFormatter(tokenizer, style, role_tokens(cfg.model), int(cfg.data.max_length),
                              relationship_in_prompt=bool(cfg.data.relationship_in_prompt and cfg.data.relationships),
                              labels=run_labels(dataset))
    return RunInputs(dataset, base_path, tokenizer, formatter)


def prepare_run_dataset(data_cfg: DictConfig, record_path: Path | None) -> PreparedDataset:
    """Build or reuse the content-addressed dataset and record its identity (the run folder's dataset.json)."""
    dataset = prepare_dataset(data_cfg, log=log.info)
    if record_path is not None:
        data = OmegaConf.to_container(data_cfg, resolve=True) if isinstance(data_cfg, DictConfig) else dict(data_cfg)
        write_json(record_path, dataset.record(parse_data_config(data), data))
    return dataset


def published_dataset(data_cfg: DictConfig) -> PreparedDataset:
    """The dataset of these exports + data config that another rank's prepare_run_dataset published."""
    cfg = parse_data_config(data_cfg)
    identity = dataset_identity(cfg)
    folder = dataset_folder(cfg, identity)
    dataset = open_dataset(folder, identity.key)
    if dataset is None:
        raise ReplicaInputError(f"{folder}: the dataset is not prepared; run `replica prepare` or train.py")
    return dataset


def run_labels(dataset: PreparedDataset) -> list[str]:
    """The relationship labels of the train split, most common first (ties by name)."""
    counts = Counter(example.get("relationship", OTHER) for example in read_jsonl(dataset.split_path("train")))
    return sorted(counts, key=lambda label: (-counts[label], label))


def train_texts(dataset: PreparedDataset) -> list[str]:
    """Every message text of the train split (all speakers), for building the tiny model's tokenizer."""
    seen: dict[str, None] = {}
    for example in read_jsonl(dataset.split_path("train")):
        for turn in example["context"]:
            seen.setdefault(turn["text"])
        seen.setdefault(example["target"])
    return list(seen)
