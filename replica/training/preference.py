"""Preference tuning on the owner's corrections: DPO with the parent's adapter as the frozen reference.

Each pair is one context with the owner's correction (chosen) and the replica's reply (rejected). A continued run
starts from its parent's adapter, so the reference log-probabilities are the run's own before its first step: they
are computed once then (adapter dropout off, no gradient) and kept in its checkpoints, so a resumed run uses the
same. The loss is DPO's, -log sigmoid(beta * ((chosen - ref_chosen) - (rejected - ref_rejected))), averaged over a
seeded draw of `batch` pairs per step and added to the reply loss times `weight`.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from replica.model.batching import PadCollator
from replica.model.formatting import ChatFormatter
from replica.model.loss import sequence_logps


@dataclass
class Preference:
    """The encoded pairs, DPO's beta, the loss weight and pairs per step; the reference log-probs once computed."""

    pairs: list[tuple[dict, dict]]  # (chosen, rejected) rows of input_ids + labels
    beta: float = 0.1
    weight: float = 1.0
    batch: int = 4
    reference: torch.Tensor | None = field(default=None)  # (pairs, 2): chosen and rejected log-probs

    def draw(self, step: int, seed: int) -> list[int]:
        """The pairs of one training step: a draw that depends only on (seed, step), so resuming repeats it."""
        count = min(self.batch, len(self.pairs))
        return random.Random(f"{seed}:{step}").sample(range(len(self.pairs)), count)


def encode_pairs(formatter: ChatFormatter, rows: Sequence[dict]) -> list[tuple[dict, dict]]:
    """(chosen, rejected) encodings of each correction row whose both replies fit `data.max_length`."""
    pairs = []
    for row in rows:
        encoded = [formatter.encode(row["context"], reply, row.get("relationship"), bool(row.get("group")))
                   for reply in (row["target"], row["rejected"])]
        if all(encoded):
            pairs.append(tuple({"input_ids": e.input_ids, "labels": e.labels} for e in encoded))
    return pairs


def pair_logps(model, preference: Preference, indices: Sequence[int], pad_id: int) -> torch.Tensor:
    """(len(indices), 2) summed reply log-probs of the chosen and the rejected reply of each pair."""
    rows = [row for index in indices for row in preference.pairs[index]]
    batch = PadCollator(pad_id)(rows)
    device = next(model.parameters()).device
    logps = sequence_logps(model, {key: value.to(device) for key, value in batch.items()})
    return logps.view(len(indices), 2)


def reference_logps(model, preference: Preference, pad_id: int) -> torch.Tensor:
    """Every pair's log-probs under the model as it is now (the parent's adapter), without dropout or gradient."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            parts = [pair_logps(model, preference, range(start, min(start + preference.batch, len(preference.pairs))),
                                pad_id) for start in range(0, len(preference.pairs), preference.batch)]
    finally:
        model.train(was_training)
    return torch.cat(parts).detach().cpu() if parts else torch.zeros(0, 2)


def dpo_loss(policy: torch.Tensor, reference: torch.Tensor, beta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """DPO's loss over pairs and the mean reward margin (how much more the policy prefers the chosen reply)."""
    margin = (policy[:, 0] - reference[:, 0]) - (policy[:, 1] - reference[:, 1])
    return -F.logsigmoid(beta * margin).mean(), (beta * margin).mean().detach()
