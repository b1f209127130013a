"""Learning-rate schedules that take the run's total step count (known only once the trainer is set up)."""

from __future__ import annotations

import math

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR


def cosine_with_warmup(optimizer: Optimizer, total_steps: int, warmup_ratio: float = 0.05, min_lr_ratio: float = 0.0) -> LambdaLR:
    """Linear warmup over `warmup_ratio` of the steps, then cosine decay to `min_lr_ratio` x the peak lr."""
    warmup = max(1, round(total_steps * warmup_ratio)) if warmup_ratio > 0 else 0

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return LambdaLR(optimizer, factor)


def constant_with_warmup(optimizer: Optimizer, total_steps: int, warmup_ratio: float = 0.0) -> LambdaLR:
    warmup = max(1, round(total_steps * warmup_ratio)) if warmup_ratio > 0 else 0
    return LambdaLR(optimizer, lambda step: (step + 1) / warmup if step < warmup else 1.0)
