"""ChatDataModule: a prepared dataset's splits -> tokenized reply-only examples (setup) -> length-grouped batches."""

from __future__ import annotations

import logging
from typing import Any

import torch
from lightning import LightningDataModule
from lightning.pytorch.utilities import rank_zero_only
from torch.utils.data import DataLoader

from replica.atomic import read_jsonl, write_jsonl
from replica.errors import ReplicaInputError
from replica.model.batching import GroupedBatchSampler, PadCollator, ResumableLoader
from replica.model.formatting import IGNORE_INDEX, ChatFormatter
from replica.prepare.store import PreparedDataset
from replica.settings import SPLITS

log = logging.getLogger(__name__)


class ChatDataModule(LightningDataModule):
    """Context-window chat examples of `dataset`, encoded by `formatter` so that only the reply and its end-of-turn
    token are learned; `extra_train` rows (a continued run's feedback, each with its `weight`) join the train split."""

    def __init__(
        self,
        dataset: PreparedDataset,
        formatter: ChatFormatter,
        batch_size: int = 8,
        eval_batch_size: int = 16,
        num_workers: int = 0,
        group_by_length: bool = True,
        pad_to_multiple_of: int | None = None,
        preview_examples: int = 8,
        preview_path: str | None = None,
        seed: int = 0,
        extra_train: list[dict] | None = None,
    ) -> None:
        super().__init__()
        self.extra_train = list(extra_train or [])
        self.dataset = dataset
        self.formatter = formatter
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.num_workers = num_workers
        self.group_by_length = group_by_length
        self.pad_to_multiple_of = pad_to_multiple_of
        self.preview_examples = preview_examples
        self.preview_path = preview_path
        self.seed = seed
        self.encoded: dict[str, list[dict]] = {}
        self.label_names: list[str] = []  # the relationship labels of the examples; a row's `label` indexes it
        self.raw: dict[str, list[dict]] = {}
        self.dropped: dict[str, int] = {}
        self._train_loader: ResumableLoader | None = None
        self._train_loader_state: dict | None = None

    def load_split(self, split: str) -> list[dict]:
        if split not in self.raw:
            self.raw[split] = read_jsonl(self.dataset.split_path(split))
        return self.raw[split]

    def setup(self, stage: str | None = None) -> None:
        if not self.label_names:
            found = {example.get("relationship") for split in SPLITS for example in self.load_split(split)}
            self.label_names = sorted(label for label in found if label)
        for split in SPLITS:
            if split in self.encoded:
                continue
            rows, dropped = [], 0
            extra = self.extra_train if split == "train" else []
            for example in [*self.load_split(split), *extra]:
                enc = self.formatter.encode(example["context"], example["target"], example.get("relationship"),
                                            bool(example.get("group")))
                if enc is None:
                    dropped += 1
                    continue
                rows.append({"input_ids": enc.input_ids, "labels": enc.labels, "weight": example.get("weight", 1.0),
                             "label": self._label_index(example.get("relationship"))})
            self.encoded[split] = rows
            self.dropped[split] = dropped
            if dropped:
                log.warning("%s: %d examples dropped (reply longer than data.max_length)", split, dropped)
        if not self.encoded["train"] or not self.encoded["val"]:
            raise ReplicaInputError(
                f"{self.dataset.dir}: the train or val split is empty; add more chats or lower data.context_min"
            )
        self.write_preview()

    def _label_index(self, label: str | None) -> int:
        """The row's relationship label as an index of `label_names` (-1: none)."""
        return self.label_names.index(label) if label in self.label_names else -1

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
                    "prompt": self.formatter.tokenizer.decode(prompt),
                    "supervised": self.formatter.tokenizer.decode(supervised),
                    "target": example["target"],
                    "end_of_turn": self.formatter.end_of_turn,
                }
            )
        write_jsonl(self.preview_path, rows)

    # ---- loaders --------------------------------------------------------------------------------------
    def _collator(self) -> PadCollator:
        return PadCollator(self.formatter.tokenizer.pad_token_id, self.pad_to_multiple_of)

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
