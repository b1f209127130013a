"""Exact resume: stopping mid-epoch at step 6 and resuming to 12 equals 12 straight steps."""

from __future__ import annotations

import os
from pathlib import Path

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


def _fake_run(runs: Path, name: str, cfg, mtime: int) -> Path:
    """A run folder as train.py leaves it: resume_key.json + a real (tiny) torch checkpoint."""
    from replica.training.resume import write_resume_key

    ckpt = runs / name / "checkpoints" / "last.ckpt"
    ckpt.parent.mkdir(parents=True)
    torch.save({"state_dict": {"w": torch.zeros(2)}, "global_step": 3}, ckpt)
    write_resume_key(runs / name, cfg)
    os.utime(ckpt, (mtime, mtime))
    return ckpt


def test_ckpt_path_auto_picks_the_newest_run_that_fits(tmp_path):
    from replica.training.resume import resolve_ckpt_path
    from tests.helpers import tiny_cfg

    cfg = tiny_cfg(tmp_path, ["ckpt_path=auto", "lora.r=4"])
    assert resolve_ckpt_path(cfg) is None  # nothing to resume yet: start fresh
    runs = tmp_path / "logs" / cfg.task_name / "runs"
    _fake_run(runs, "2026-01-01_10-00-00", cfg, 1_000_000)
    fitting = _fake_run(runs, "2026-01-02_10-00-00", cfg, 1_000_001)
    _fake_run(runs, "2026-01-03_10-00-00", tiny_cfg(tmp_path, ["lora.r=8"]), 1_000_002)  # newer, other lora.r
    damaged = _fake_run(runs, "2026-01-04_10-00-00", cfg, 1_000_003)
    damaged.write_bytes(damaged.read_bytes()[:-40])  # newest, truncated
    assert resolve_ckpt_path(cfg) == str(fitting)


def test_ckpt_path_auto_refuses_runs_that_do_not_fit(tmp_path):
    from replica.errors import ReplicaInputError
    from replica.training.resume import resolve_ckpt_path
    from tests.helpers import tiny_cfg

    runs = tmp_path / "logs" / "train" / "runs"
    _fake_run(runs, "2026-01-03_10-00-00", tiny_cfg(tmp_path, ["lora.r=8"]), 1_000_002)
    with pytest.raises(ReplicaInputError) as err:
        resolve_ckpt_path(tiny_cfg(tmp_path, ["ckpt_path=auto", "lora.r=4"]))
    message = str(err.value)
    assert "2026-01-03_10-00-00" in message and "lora.r=8 (this run: 4)" in message and "ckpt_path=null" in message


def test_missing_ckpt_path_is_a_clear_error(tmp_path):
    from replica.errors import ReplicaInputError
    from replica.training.run import resolve_ckpt_path
    from tests.helpers import tiny_cfg

    with pytest.raises(ReplicaInputError, match="no such checkpoint"):
        resolve_ckpt_path(tiny_cfg(tmp_path, [f"ckpt_path={tmp_path / 'nope.ckpt'}"]))
