"""train.py through its real command line: config errors, DDP on 2 CPU processes, multirun sweeps."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from tests.helpers import FAST_OVERRIDES, paths, run_train

ROOT = Path(__file__).resolve().parents[1]
SHRINK = [o for o in FAST_OVERRIDES if not o.startswith("trainer=")]


def test_typo_in_a_key_fails_fast_with_the_valid_keys(tmp_path):
    result = run_train(["lora.rank=8"], tmp_path, timeout=120)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert "lora.rank" in lines[0] and "alpha, bias, dropout, r," in lines[0]


def test_wrong_type_fails_with_one_line(tmp_path):
    result = run_train(["lora.r=many", *paths(tmp_path)], tmp_path, timeout=120)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "lora.r" in result.stderr.strip().splitlines()[-1]


@pytest.mark.slow
def test_ddp_on_two_cpu_processes(tmp_path):
    run_dir = tmp_path / "run"
    result = run_train(
        ["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", *SHRINK, *paths(tmp_path), f"hydra.run.dir={run_dir}"],
        tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in result.stderr + result.stdout
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["global_step"] == 24
    assert summary["best_val_loss"] < summary["initial_val_loss"]
    assert (run_dir / "adapter" / "adapter_model.safetensors").is_file()


@pytest.mark.slow
def test_multirun_stopped_before_the_first_validation_finishes_every_job(tmp_path):
    sweep_dir = tmp_path / "sweep"
    result = run_train(
        ["-m", "lora.r=4,8", "trainer=cpu", *SHRINK, "trainer.max_steps=3", "validate_before_training=false",
         *paths(tmp_path), f"hydra.sweep.dir={sweep_dir}"],
        tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    with open(sweep_dir / "summary.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert sorted(int(r["lora.r"]) for r in rows) == [4, 8]
    assert all(r["status"] == "done" and r["global_step"] == "3" for r in rows)
    for job in ("0", "1"):
        assert f"run folder: {Path('sweep') / job}" in result.stdout
        assert (sweep_dir / job / "adapter" / "adapter_model.safetensors").is_file()
        assert json.loads((sweep_dir / job / "summary.json").read_text())["final_val_loss"] is not None
    assert len({r["adapter_dir"] for r in rows}) == 2


@pytest.mark.slow
def test_validation_interval_longer_than_an_epoch_is_one_line(tmp_path):
    """Only known once the epoch's length is: still one line naming the key and the fix, never Lightning's traceback."""
    result = run_train(
        ["trainer=cpu", *SHRINK, "trainer.val_check_interval=100000", "validate_before_training=false", *paths(tmp_path)],
        tmp_path,
    )
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("train.py: error: trainer.val_check_interval") and "check_val_every_n_epoch=null" in last
