"""ChatDataModule: exports -> content-addressed dataset (prepare_data) -> tokenized reply-only examples (setup)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from lightning import LightningDataModule
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf
import torch
from torch.utils.data import DataLoader

from replica.atomic import read_jsonl, write_json, write_jsonl
from replica.errors import ReplicaInputError
from replica.prepare.config import parse_data_config
from replica.prepare.pipeline import prepare_dataset
from replica.prepare.store import PreparedDataset, dataset_folder, dataset_identity, open_dataset
from replica.model.batching import GroupedBatchSampler, PadCollator, ResumableLoader
from replica.model.formatting import IGNORE_INDEX, ChatFormatter, resolve_format
from replica.model.tokens import RoleTokens

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")


class ChatDataModule(LightningDataModule):
    """Context-window chat examples, formatted so that only the reply and its end-of-turn token are learned."""

    def __init__(
        self,
        data: Mapping,
        batch_size: int = 8,
        eval_batch_size: int = 16,
        num_workers: int = 0,
        group_by_length: bool = True,
        pad_to_multiple_of: int | None = None,
        preview_examples: int = 8,
        preview_path: str | None = None,
        record_path: str | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.data_cfg = data
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.num_workers = num_workers
        self.group_by_length = group_by_length
        self.pad_to_multiple_of = pad_to_multiple_of
        self.preview_examples = preview_examples
        self.preview_path = preview_path
        self.record_path = record_path
        self.seed = seed
        self._dataset: PreparedDataset | None = None
        self.tokenizer = None
        self.formatter: ChatFormatter | None = None
        self.encoded: dict[str, list[dict]] = {}
        self.raw: dict[str, list[dict]] = {}
        self.dropped: dict[str, int] = {}
        self._train_loader: ResumableLoader | None = None
        self._train_loader_state: dict | None = None

    def prepare_data(self) -> None:
        """Build or reuse the content-addressed dataset and record its identity in the run folder."""
        if self._dataset is None:
            self._dataset = prepare_dataset(self.data_cfg, log=log.info)
        if self.record_path:
            data = self.data_cfg
            data = OmegaConf.to_container(data, resolve=True) if isinstance(data, DictConfig) else dict(data)
            write_json(self.record_path, self._dataset.record(parse_data_config(data), data))

    @property
    def dataset(self) -> PreparedDataset:
        """The published dataset of these exports + data config (another rank's prepare_data built it)."""
        if self._dataset is None:
            cfg = parse_data_config(self.data_cfg)
            identity = dataset_identity(cfg)
            folder = dataset_folder(cfg, identity)
            self._dataset = open_dataset(folder, identity.key)
            if self._dataset is None:
                raise ReplicaInputError(f"{folder}: the dataset is not prepared; run `replica prepare` or train.py")
        return self._dataset

    def load_split(self, split: str) -> list[dict]:
        if split not in self.raw:
            self.raw[split] = read_jsonl(self.dataset.split_path(split))
        return self.raw[split]

    def attach(self, tokenizer, tokens: RoleTokens, data_format: str | None = None) -> None:
        """Give the module the tokenizer the model uses (with its role/pad tokens) and the resolved data.format."""
        self.tokenizer = tokenizer
        style = resolve_format(data_format or self.data_cfg["format"], tokenizer)
        self.formatter = ChatFormatter(tokenizer, style, tokens, int(self.data_cfg["max_length"]),
                                       relationship_in_prompt=bool(self.data_cfg.get("relationship_in_prompt", False)))

    def setup(self, stage: str | None = None) -> None:
        if self.formatter is None:
            raise RuntimeError("ChatDataModule.attach(tokenizer, tokens) must be called before setup")
        for split in SPLITS:
            if split in self.encoded:
                continue
            rows, dropped = [], 0
            for example in self.load_split(split):
                enc = self.formatter.encode(example["context"], example["target"], example.get("relationship"),
                                            example.get("group", False))
                if enc is None:
                    dropped += 1
                    continue
                rows.append({"input_ids": enc.input_ids, "labels": enc.labels})
            self.encoded[split] = rows
            self.dropped[split] = dropped
            if dropped:
                log.warning("%s: %d examples dropped (reply longer than data.max_length)", split, dropped)
        if not self.encoded["train"] or not self.encoded["val"]:
            raise ReplicaInputError(
                f"{self.dataset.dir}: the train or val split is empty; add more chats or lower data.context_min"
            )
        self.write_preview()

    @rank_zero_only
    def write_preview(self) -> None:
        """`data_preview.jsonl`: exactly what the model sees and what it learns for the first examples."""
        if not self.preview_path or not self.preview_examples:
            return
        rows = []
        for example, enc in zip(self.raw["train"], self.encoded["train"][: self.preview_examples]):
            prompt = [i for i, label in zip(enc["input_ids"], enc["labels"]) if label == IGNORE_INDEX]
            supervised = [label for label in enc["labels"] if label != IGNORE_INDEX]
            rows.append(
                {
                    "prompt": self.tokenizer.decode(prompt),
                    "supervised": self.tokenizer.decode(supervised),
                    "target": example["target"],
                    "end_of_turn": self.formatter.end_of_turn,
                }
            )
        write_jsonl(self.preview_path, rows)

    def train_texts(self) -> list[str]:
        """Every message text of the train split (all speakers), for building the tiny model's tokenizer."""
        seen: dict[str, None] = {}
        for example in self.load_split("train"):
            for turn in example["context"]:
                seen.setdefault(turn["text"])
            seen.setdefault(example["target"])
        return list(seen)

    # ---- loaders --------------------------------------------------------------------------------------
    def _collator(self) -> PadCollator:
        return PadCollator(self.tokenizer.pad_token_id, self.pad_to_multiple_of)

    def train_dataloader(self) -> ResumableLoader:
        rows = self.encoded["train"]
        trainer = self.trainer
        sampler = GroupedBatchSampler(
            [len(r["input_ids"]) for r in rows],
            self.batch_size,
            seed=self.seed,
            group_by_length=self.group_by_length,
            num_replicas=trainer.world_size if trainer else 1,
            rank=trainer.global_rank if trainer else 0,
        )
        self._train_loader = ResumableLoader(
            rows, batch_sampler=sampler, collate_fn=self._collator(), num_workers=self.num_workers,
            generator=self._own_generator(),
        )
        if self._train_loader_state is not None:
            self._train_loader.load_state_dict(self._train_loader_state)
            self._train_loader_state = None
        return self._train_loader

    # Lightning restores a stateful train loader only if it was created after the loops were restored, which is
    # not the case once `estimated_stepping_batches` has been used; the datamodule's own state always round-trips.
    def state_dict(self) -> dict[str, Any]:
        return {"train_loader": self._train_loader.state_dict()} if self._train_loader is not None else {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._train_loader_state = state_dict.get("train_loader")

    def _eval_loader(self, split: str) -> DataLoader:
        rows = self.encoded[split]
        trainer = self.trainer
        sampler = GroupedBatchSampler(
            [len(r["input_ids"]) for r in rows],
            self.eval_batch_size,
            seed=self.seed,
            shuffle=False,
            num_replicas=trainer.world_size if trainer else 1,
            rank=trainer.global_rank if trainer else 0,
        )
        return DataLoader(
            rows, batch_sampler=sampler, collate_fn=self._collator(), num_workers=self.num_workers,
            generator=self._own_generator(),
        )

    def _own_generator(self) -> torch.Generator:
        """Loaders draw their worker seed from this, not from the global RNG that LoRA dropout uses."""
        return torch.Generator().manual_seed(self.seed)

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader("test")

    def on_before_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        if self.trainer is not None and self.trainer.training and self._train_loader is not None:
            self._train_loader.mark_consumed()
        return batch
