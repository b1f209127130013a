"""A run stops anywhere cleanly, never skips its best adapter, says where it is, and refuses bad input in one line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
import torch

from tests.helpers import FAST_OVERRIDES, assert_one_line_error, default_ctrl_c, paths, run_train, train_tiny

ROOT = Path(__file__).resolve().parents[1]
SHRINK = [o for o in FAST_OVERRIDES if not o.startswith(("trainer=", "trainer.max_steps"))]
NOTICES = ("kernels-community", "FutureWarning", "💡 Tip", "Total FLOPs", "Paged optimizers are not supported",
           "gguf_writer", "use_cache=True")  # gguf: the package logs each file the stop-sequence callback writes


def run_dirs(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "logs" / "train" / "runs").glob("*"))


def adapter_meta(run_dir: Path) -> dict:
    return json.loads((run_dir / "adapter" / "replica.json").read_text())


# ---- stop anywhere --------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_max_steps_before_the_first_validation_finishes_the_run(tmp_path):
    result = run_train(["trainer=cpu", *SHRINK, "trainer.max_steps=5", *paths(tmp_path)], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    [run_dir] = run_dirs(tmp_path)
    shown = f"run folder: {run_dir.relative_to(tmp_path)}"
    lines = result.stdout.splitlines()
    assert lines[0] == shown and shown in lines[-6:]  # printed at the start and again in the final report
    assert f"next: python evaluate.py run_dir={run_dir.relative_to(tmp_path)}" in result.stdout
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["global_step"] == 5 and summary["stop_reason"] == "trainer.max_steps=5"
    assert summary["final_val_loss"] is not None and summary["clean_stop_rate"] is not None  # step 5 was validated
    assert adapter_meta(run_dir)["global_step"] == 5 and adapter_meta(run_dir)["best_score"] is not None
    assert (run_dir / "adapter" / "adapter_model.safetensors").is_file()
    for notice in NOTICES:
        assert notice not in result.stdout + result.stderr, notice
    logged = yaml.safe_load((run_dir / "csv" / "hparams.yaml").read_text(encoding="utf-8"))  # the logger got the config
    recorded = adapter_meta(run_dir)["config"]
    assert logged["trainer"]["max_steps"] == 5 and logged["lora"] == recorded["lora"] and logged["seed"] == recorded["seed"]
    assert logged["data"]["me"] == f"<{len(recorded['data']['me'])} name(s)>"  # not the user's names


@pytest.mark.slow
def test_best_adapter_is_exported_when_a_validation_lands_on_a_last_ckpt_step(tmp_path):
    schedule = ["trainer.max_steps=20", "trainer.val_check_interval=20", "callbacks.model_checkpoint.last_every_n_steps=10",
                "validate_before_training=false"]
    summary, run_dir = train_tiny(tmp_path, schedule)
    assert summary["best_checkpoint"].endswith("best-step000020.ckpt") and Path(summary["best_checkpoint"]).is_file()
    meta = adapter_meta(run_dir)
    assert meta["global_step"] == 20 and meta["best_score"] == pytest.approx(summary["best_val_loss"])


@pytest.mark.slow
def test_best_adapter_is_exported_when_an_epoch_of_25_steps_ends_on_the_default_last_ckpt_step(tmp_path):
    epoch_of_25 = ["trainer.max_steps=-1", "trainer.max_epochs=1", "trainer.val_check_interval=1.0",
                   "+trainer.limit_train_batches=25", "validate_before_training=false"]
    summary, run_dir = train_tiny(tmp_path, epoch_of_25)
    assert summary["global_step"] == 25
    assert summary["best_checkpoint"].endswith("best-step000025.ckpt") and Path(summary["best_checkpoint"]).is_file()
    assert adapter_meta(run_dir)["global_step"] == 25 and adapter_meta(run_dir)["best_score"] is not None


@pytest.mark.slow
def test_early_stopping_ends_a_run_with_its_best_adapter(tmp_path):
    never_better = ["trainer.max_steps=40", "trainer.val_check_interval=2", "callbacks.early_stopping.patience=1",
                    "callbacks.early_stopping.min_delta=100", "validate_before_training=false"]
    summary, run_dir = train_tiny(tmp_path, never_better)
    assert summary["stop_reason"] == "early stopping" and summary["global_step"] == 4
    best_step = int(Path(summary["best_checkpoint"]).stem.removeprefix("best-step"))
    assert best_step in (2, 4) and adapter_meta(run_dir)["global_step"] == best_step
    assert adapter_meta(run_dir)["best_score"] == pytest.approx(summary["best_val_loss"])
    assert (run_dir / "summary.json").is_file()


@pytest.mark.slow
def test_ctrl_c_finishes_the_run_and_exits_130(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = ["trainer=cpu", *SHRINK, "trainer.max_steps=400", "trainer.val_check_interval=100",
            "callbacks.model_checkpoint.last_every_n_steps=3", "validate_before_training=false", *paths(tmp_path)]
    process = subprocess.Popen([sys.executable, str(ROOT / "train.py"), *args], cwd=tmp_path, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=default_ctrl_c)
    try:
        deadline = time.monotonic() + 1200
        while not list((tmp_path / "logs").glob("train/runs/*/checkpoints/last.ckpt")):
            assert process.poll() is None and time.monotonic() < deadline, process.communicate()[1][-3000:]
            time.sleep(0.5)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=600)
    finally:
        process.kill()
    assert process.returncode == 130, err[-3000:]
    [run_dir] = run_dirs(tmp_path)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["stop_reason"] == "interrupted (Ctrl-C)" and 3 <= summary["global_step"] < 400
    assert summary["final_val_loss"] is not None  # the final weights were validated after the interruption
    assert adapter_meta(run_dir)["global_step"] == summary["global_step"]
    assert "resume: python train.py ckpt_path=" in out and "Traceback" not in err


# ---- ckpt_path=auto --------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_ckpt_path_auto_refuses_a_run_of_another_lora_rank(tmp_path):
    _, run_a = train_tiny(tmp_path, ["lora.r=4", "trainer.max_steps=2", "validate_before_training=false", "logger=tensorboard"],
                          shared_data=tmp_path / "data")
    runs = tmp_path / "logs" / "train" / "runs"
    runs.mkdir(parents=True)
    run_a = run_a.rename(runs / "2026-01-01_10-00-00")
    assert list((run_a / "tensorboard").rglob("events.out.tfevents.*")), "logger=tensorboard wrote no event file"
    result = run_train(["trainer=cpu", *SHRINK, "ckpt_path=auto", "lora.r=8", *paths(tmp_path)], tmp_path, timeout=300)
    assert_one_line_error(result, "train.py: error: ckpt_path=auto", "2026-01-01_10-00-00", "lora.r=4 (this run: 8)")
    assert run_dirs(tmp_path) == [run_a]  # the refused run left no folder behind


# ---- one line, exit 2 -----------------------------------------------------------------------------------------
def test_out_of_range_values_are_all_reported_in_one_line(tmp_path):
    bad = ["trainer.max_steps=-5", "trainer.devices=0", "optimizer.lr=-1", "datamodule.batch_size=0", "lora.alpha=-1"]
    result = run_train([*bad, *paths(tmp_path)], tmp_path, timeout=300)
    assert_one_line_error(result, "train.py: error: invalid config", *(key.split("=")[0] for key in bad))
    assert run_dirs(tmp_path) == []  # a run failing before training leaves no run folder


def test_a_missing_export_path_is_one_line(tmp_path):
    result = run_train([f"data.exports=[{tmp_path / 'nope'}]", *paths(tmp_path)], tmp_path, timeout=300)
    assert_one_line_error(result, "train.py: error: invalid config", "data.exports", "nope", "no such file")
    assert run_dirs(tmp_path) == []


def test_a_single_export_path_string_is_a_one_element_list(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "replica.cli", "prepare", f"data.exports={ROOT / 'examples' / 'exports'}",
         f"data.datasets_dir={tmp_path / 'dataset'}", f"paths.data_dir={tmp_path}"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert list((tmp_path / "dataset").rglob("train.jsonl"))


def _checkpoint(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": {"w": torch.arange(4096, dtype=torch.float32)}, "global_step": 3}, path)
    return path


@pytest.mark.parametrize("damage", ["truncated", "flipped byte"])
def test_a_damaged_last_ckpt_is_one_line(tmp_path, damage):
    ckpt = _checkpoint(tmp_path / "old" / "checkpoints" / "last.ckpt")
    data = bytearray(ckpt.read_bytes())
    if damage == "truncated":
        data = data[: len(data) // 2]
    else:
        data[len(data) // 2] ^= 0xFF  # inside the weights: only the checksum notices
    ckpt.write_bytes(bytes(data))
    result = run_train([f"ckpt_path={ckpt}", *paths(tmp_path)], tmp_path, timeout=300)
    assert_one_line_error(result, "train.py: error: ckpt_path=", str(ckpt), "corrupt", "ckpt_path=null")
    assert run_dirs(tmp_path) == []


def test_a_sweep_job_with_a_truncated_summary_counts_as_failed(tmp_path):
    from replica.sweep import write_sweep_summary

    for job, summary in (("0", '{"global_step": 3, "best_val_loss": 1.5}'), ("1", '{"global_step": 3, "best_')):
        (tmp_path / job / ".hydra").mkdir(parents=True)
        (tmp_path / job / ".hydra" / "overrides.yaml").write_text(f"- lora.r={4 * (int(job) + 1)}\n")
        (tmp_path / job / "summary.json").write_text(summary)
    rows = (write_sweep_summary(tmp_path)).read_text().splitlines()
    assert rows[1].startswith("0,4,3,1.5,done") and rows[2].startswith("1,8,") and rows[2].endswith("failed")


def test_library_notices_are_silenced_but_real_problems_still_show():
    import logging
    import warnings

    from replica.training.quiet import silence_third_party_notices

    class Collect(logging.Handler):
        def __init__(self) -> None:
            super().__init__()
            self.messages: list[str] = []

        def emit(self, record: logging.LogRecord) -> None:
            self.messages.append(record.getMessage())

    handler = Collect()
    logging.getLogger().addHandler(handler)
    try:
        with warnings.catch_warnings(record=True) as caught:
            silence_third_party_notices()
            bnb = logging.getLogger("bitsandbytes.backends.cpu.ops")
            bnb.warning("Failed to load CPU gemm_4bit_forward from kernels-community: No module named 'kernels'")
            bnb.warning("CUDA error: out of memory")
            lightning = logging.getLogger("lightning.pytorch.utilities.rank_zero")
            lightning.info("💡 Tip: For seamless cloud logging, try installing [litlogger]")
            lightning.warning("The number of training batches (3) is smaller than the logging interval")
            warnings.warn_explicit("`x` is deprecated", FutureWarning, "modeling_utils.py", 1, module="transformers.modeling_utils")
            warnings.warn_explicit("Paged optimizers are not supported on CPU. Falling back", UserWarning, "optimizer.py", 1,
                                   module="bitsandbytes.optim.optimizer")
            warnings.warn_explicit("attention mask is not set", UserWarning, "generation.py", 1, module="transformers.generation")
    finally:
        logging.getLogger().removeHandler(handler)
    assert handler.messages == ["CUDA error: out of memory", "The number of training batches (3) is smaller than the logging interval"]
    assert [str(w.message) for w in caught] == ["attention mask is not set"]


def test_a_failed_run_never_deletes_a_folder_holding_other_files(tmp_path):
    own = tmp_path / "project"
    (own / ".hydra").mkdir(parents=True)
    (own / "notes.txt").write_text("mine")
    result = run_train(["optimizer.lr=-1", f"hydra.run.dir={own}", *paths(tmp_path)], tmp_path, timeout=300)
    assert_one_line_error(result, "train.py: error: invalid config", "optimizer.lr")
    assert (own / "notes.txt").read_text() == "mine" and (own / ".hydra").is_dir()
