"""Dynamic padding, length-grouped batches and a data loader that resumes exactly mid-epoch."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch.utils.data import DataLoader, Sampler

from replica.model.formatting import IGNORE_INDEX


class PadCollator:
    """Right-pads a list of {input_ids, labels} to the batch's longest; attention mask from true lengths; each row's
    loss `weight` (1 unless given) as `weights`, and its relationship `label` index as `label_ids` when rows have one."""

    def __init__(self, pad_id: int, pad_to_multiple_of: int | None = None) -> None:
        self.pad_id = pad_id
        self.multiple = pad_to_multiple_of

    def __call__(self, rows: Sequence[dict]) -> dict[str, torch.Tensor]:
        longest = max(len(r["input_ids"]) for r in rows)
        if self.multiple:
            longest = -(-longest // self.multiple) * self.multiple
        n = len(rows)
        input_ids = torch.full((n, longest), self.pad_id, dtype=torch.long)
        labels = torch.full((n, longest), IGNORE_INDEX, dtype=torch.long)
        attention = torch.zeros((n, longest), dtype=torch.long)
        for i, row in enumerate(rows):
            size = len(row["input_ids"])
            input_ids[i, :size] = torch.as_tensor(row["input_ids"])
            labels[i, :size] = torch.as_tensor(row["labels"])
            attention[i, :size] = 1
        weights = torch.tensor([float(row.get("weight", 1.0)) for row in rows], dtype=torch.float32)
        batch = {"input_ids": input_ids, "labels": labels, "attention_mask": attention, "weights": weights}
        if "label" in rows[0]:  # the rows' relationship labels, as indices (-1: none): val loss per label
            batch["label_ids"] = torch.tensor([int(row["label"]) for row in rows], dtype=torch.long)
        return batch


class GroupedBatchSampler(Sampler[list[int]]):
    """Seeded batches of similar lengths: shuffle, sort inside mega-batches, shuffle batch order.

    `group_by_length=False` gives plain shuffled batches. The order depends only on (seed, epoch), so a resumed
    run can skip the batches it already consumed and see exactly the same remaining ones.
    """

    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int,
        *,
        seed: int,
        shuffle: bool = True,
        group_by_length: bool = True,
        mega_batch: int = 64,
        drop_last: bool = False,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        self.lengths = list(lengths)
        self.batch_size = batch_size
        self.seed = seed
        self.shuffle = shuffle
        self.group_by_length = group_by_length
        self.mega_batch = mega_batch
        self.drop_last = drop_last
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = 0
        self.skip = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _all_batches(self) -> list[list[int]]:
        order = list(range(len(self.lengths)))
        rng = random.Random(self.seed * 1_000_003 + self.epoch)
        if self.shuffle:
            rng.shuffle(order)
        if self.group_by_length:
            span = self.batch_size * self.mega_batch * self.num_replicas
            chunks = [order[i : i + span] for i in range(0, len(order), span)]
            order = [i for chunk in chunks for i in sorted(chunk, key=self.lengths.__getitem__, reverse=True)]
        step = self.batch_size * self.num_replicas
        groups = [order[i : i + step] for i in range(0, len(order), step)]
        if self.drop_last and groups and len(groups[-1]) < step:
            groups.pop()
        if self.shuffle and self.group_by_length:
            rng.shuffle(groups)
        if self.num_replicas > 1 and groups and len(groups[-1]) % self.num_replicas:
            # every rank must get the same number of batches (else DDP all-reduce hangs): top the last group up
            short = self.num_replicas - len(groups[-1]) % self.num_replicas
            groups[-1] = groups[-1] + order[:short]
        return [g[self.rank :: self.num_replicas] for g in groups]

    def __iter__(self) -> Iterator[list[int]]:
        batches = self._all_batches()
        start, self.skip = self.skip, 0
        yield from batches[start:]

    def __len__(self) -> int:
        return len(self._all_batches())


class ResumableLoader(DataLoader):
    """A DataLoader over a GroupedBatchSampler whose position Lightning saves in checkpoints and restores.

    Each new iteration is a new epoch (the sampler's order depends on it); `consumed` counts batches actually
    handed to the model, so the prefetched-but-unused batch is not lost on resume.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.consumed = 0
        self._iterated = False
        self._restored = False

    def __iter__(self):
        if self._restored:
            self._restored = False
        elif self._iterated:
            self.batch_sampler.set_epoch(self.batch_sampler.epoch + 1)
        self._iterated = True
        self.consumed = self.batch_sampler.skip
        return super().__iter__()

    def mark_consumed(self) -> None:
        """Called once per training batch given to the model."""
        self.consumed += 1

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.batch_sampler.epoch, "consumed": self.consumed}

    def load_state_dict(self, state: dict[str, int]) -> None:
        epoch, consumed = state["epoch"], state["consumed"]
        self.batch_sampler.set_epoch(epoch)
        if consumed >= len(self.batch_sampler):
            epoch, consumed = epoch + 1, 0
        self.batch_sampler.set_epoch(epoch)
        self.batch_sampler.skip = consumed
        self._restored = True


def padding_fraction(lengths: Sequence[int], batches: Sequence[Sequence[int]]) -> float:
    """Share of pad positions when `batches` are padded to their longest member."""
    real = padded = 0
    for batch in batches:
        sizes = [lengths[i] for i in batch]
        real += sum(sizes)
        padded += max(sizes) * len(sizes)
    return 0.0 if padded == 0 else 1.0 - real / padded
