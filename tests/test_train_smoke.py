"""The real QLoRA path end to end on the tiny model: 4-bit base, LoRA, adapter-only checkpoints, export."""

from __future__ import annotations

import json

import pytest
import torch

from tests.helpers import train_tiny

pytestmark = pytest.mark.slow  # every test here shares one real training run


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("smoke")
    return train_tiny(tmp)


def test_run_dir_layout_and_summary(run):
    summary, run_dir = run
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    assert (run_dir / "adapter" / "adapter_model.safetensors").is_file()
    assert (run_dir / "data_preview.jsonl").is_file()
    on_disk = json.loads((run_dir / "summary.json").read_text())
    for key in ("initial_val_loss", "best_val_loss", "global_step", "clean_stop_rate", "adapter_dir"):
        assert on_disk[key] is not None, key
    assert on_disk["global_step"] == 24
    assert on_disk["best_val_loss"] < on_disk["initial_val_loss"]


def test_checkpoint_holds_only_trainable_weights(run):
    _, run_dir = run
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    keys = list(ckpt["state_dict"])
    assert keys and all("lora_" in k or "trainable_tokens" in k for k in keys)
    assert not any("weight.absmax" in k or "quant_map" in k for k in keys)
    assert ckpt["optimizer_states"] and ckpt["lr_schedulers"]
    assert ckpt["ChatDataModule"]["train_loader"] == {"epoch": 0, "consumed": 24}


def test_exported_adapter_loads_with_peft(run):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    summary, run_dir = run
    adapter = run_dir / "adapter"
    meta = json.loads((adapter / "replica.json").read_text())
    tokenizer = AutoTokenizer.from_pretrained(adapter)
    assert tokenizer.pad_token_id != tokenizer.eos_token_id
    assert "<|eot|>" in tokenizer.get_vocab()
    base = AutoModelForCausalLM.from_pretrained(meta["base_model"])
    model = PeftModel.from_pretrained(base, adapter)
    assert any("lora_A" in n for n, _ in model.named_parameters())


def test_preview_shows_reply_plus_end_of_turn(run):
    _, run_dir = run
    rows = [json.loads(line) for line in (run_dir / "data_preview.jsonl").read_text().splitlines()]
    assert rows
    for row in rows:
        assert row["supervised"] == row["target"] + row["end_of_turn"]
        assert row["prompt"].endswith("<|me|>")
