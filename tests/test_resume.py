"""Exact resume: stopping mid-epoch at step 6 and resuming to 12 equals 12 straight steps."""

from __future__ import annotations

import pytest
import torch

from tests.helpers import train_tiny

SCHEDULE = ["trainer.max_steps=12", "trainer.val_check_interval=5", "lora.dropout=0.1", "seed=7"]


def _trainable(ckpt_path) -> dict[str, torch.Tensor]:
    return torch.load(ckpt_path, map_location="cpu", weights_only=False)["state_dict"]


@pytest.mark.slow
def test_mid_epoch_resume_matches_straight_run(tmp_path):
    shared = tmp_path / "shared"
    straight, straight_dir = train_tiny(tmp_path / "straight", SCHEDULE, shared_data=shared)
    stopped, stopped_dir = train_tiny(
        tmp_path / "stopped",
        [*SCHEDULE, "+callbacks.stop_at._target_=callbacks.StopAtStep", "+callbacks.stop_at.step=6"],
        shared_data=shared,
    )
    assert stopped["global_step"] == 6
    resumed, _ = train_tiny(
        tmp_path / "resumed",
        [*SCHEDULE, f"ckpt_path={stopped_dir / 'checkpoints' / 'last.ckpt'}"],
        shared_data=shared,
    )
    assert straight["global_step"] == resumed["global_step"] == 12
    assert resumed["resumed_from"].endswith("last.ckpt")
    a = _trainable(straight_dir / "checkpoints" / "last.ckpt")
    b = _trainable(tmp_path / "resumed" / "run" / "checkpoints" / "last.ckpt")
    assert a.keys() == b.keys() and a
    worst = max((a[k].float() - b[k].float()).abs().max().item() for k in a)
    assert worst <= 1e-6, worst
    # the stopped run really was mid-epoch and its weights differ from the final ones
    partial = _trainable(stopped_dir / "checkpoints" / "last.ckpt")
    assert max((partial[k].float() - a[k].float()).abs().max().item() for k in a) > 1e-4
    assert resumed["initial_val_loss"] == pytest.approx(stopped["initial_val_loss"])
