"""Shared test helpers: compose the real configs, shrunk, and run real (tiny) trainings."""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from replica.config import compose

ROOT = Path(__file__).resolve().parents[1]
# One tiny-model cache for the whole test session: builds are content-addressed by their train texts and published
# atomically (as in real use), so runs on the same exports build the model once instead of once per test.
SHARED_MODEL_CACHE = Path(tempfile.mkdtemp(prefix="replica-test-models-"))
atexit.register(shutil.rmtree, SHARED_MODEL_CACHE, ignore_errors=True)

# A small but real run: bundled sample, tiny model, 4-bit NF4 + LoRA, CPU.
FAST_OVERRIDES = [
    "trainer=cpu",
    "trainer.max_epochs=1",
    "trainer.max_steps=24",
    "trainer.val_check_interval=12",
    "trainer.enable_progress_bar=false",
    "model.tiny.pretrain_steps=40",
    "callbacks.stop_sequence_eval.num_samples=8",
    "callbacks.stop_sequence_eval.max_new_tokens=16",
    "generation.max_new_tokens=16",
    "datamodule.batch_size=8",
    "data.max_length=256",
]


def tiny_cfg(tmp_path: Path, overrides: list[str] | tuple[str, ...] = (), *, shared_data: Path | None = None):
    """The real `train` config, shrunk: run dir under tmp_path, dataset + model cache shared when given."""
    data_root = shared_data or (tmp_path / "data")
    return compose(
        "train",
        [
            *FAST_OVERRIDES,
            f"paths.data_dir={data_root}",
            f"paths.cache_dir={SHARED_MODEL_CACHE}",
            f"paths.log_dir={tmp_path / 'logs'}",
            *overrides,
        ],
        output_dir=str(tmp_path / "run"),
    )


def train_tiny(tmp_path: Path, overrides: list[str] | tuple[str, ...] = (), **kwargs: Any) -> tuple[dict, Path]:
    """Run `train.train(cfg)` on the tiny config; return (summary, run_dir)."""
    from train import train

    cfg = tiny_cfg(tmp_path, overrides, **kwargs)
    return train(cfg), Path(cfg.paths.output_dir)


def assert_one_line_error(result, prefix: str, *fragments: str) -> None:
    """A CLI's bad-input contract: exit 2, exactly one stderr line starting with `prefix`, no traceback."""
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(prefix), result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def run_train(args: list[str], tmp_path: Path, timeout: int = 900) -> subprocess.CompletedProcess:
    """`python train.py ARGS` in a fresh interpreter, from tmp_path."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, str(ROOT / "train.py"), *args],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=timeout,
    )


def paths(tmp_path: Path) -> list[str]:
    """Overrides that keep a train.py run's data and logs under tmp_path."""
    return [f"paths.data_dir={tmp_path / 'data'}", f"paths.cache_dir={SHARED_MODEL_CACHE}", f"paths.log_dir={tmp_path / 'logs'}"]


def default_ctrl_c() -> None:
    """`preexec_fn` of a child that must receive Ctrl-C: SIGINT back to its default before exec. A disposition of
    SIG_IGN is inherited, and Lightning sets it in any process where a fit was interrupted."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)
