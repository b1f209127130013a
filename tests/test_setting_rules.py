"""Every setting that carries a rule, set on the command line: a bad value is refused naming its key, a good one
passes. The table is written by hand (the values are not taken from the rules), and a guard fails when a setting
gains a rule without a row here."""

from __future__ import annotations

from dataclasses import fields, is_dataclass
from pathlib import Path

import pytest

from replica.config import RUN_RULES, compose, normalize, validate
from replica.errors import ReplicaInputError
from replica.evaluation.checks import EVALUATE_RULES, setting_problems
from replica.settings import SECTIONS

ENGLISH = Path(__file__).resolve().parents[1] / "examples" / "english"
STOP_AT = "+callbacks.stop_at._target_=callbacks.StopAtStep"
GROUP_OF = {"trainer.num_nodes": "trainer=ddp"}  # keys only a group option holds

# key: (a value the key refuses, a value it accepts), as typed after `key=`
TRAIN_SETTINGS = {
    "data.exports": ("[]", f"[{ENGLISH}]"),
    "data.me": ("[1]", "[Sam]"),
    "data.datasets_dir": ("''", "/tmp/datasets"),
    "data.max_input_mib": ("0", "16"),
    "data.max_messages": ("0", "100"),
    "data.date_order": ("myd", "mdy"),
    "data.timezone": ("Mars/Base", "Europe/Rome"),
    "data.media": ("blur", "drop"),
    "data.mask.phones": ("maybe", "false"),
    "data.mask.emails": ("maybe", "false"),
    "data.mask.urls": ("maybe", "false"),
    "data.mask.iban": ("maybe", "false"),
    "data.mask.cards": ("maybe", "false"),
    "data.mask.names": ("maybe", "false"),
    "data.phone_region": ("XX", "GB"),
    "data.languages": ("[1,2]", "[en]"),
    "data.language_sample": ("0", "10"),
    "data.merge_gap": ("-1", "0"),
    "data.session_gap": ("0", "2.5"),
    "data.context_min": ("0", "2"),
    "data.context_max": ("0", "6"),
    "data.split": ("[0.5,0.5]", "[0.7,0.15,0.15]"),
    "data.seed": ("abc", "7"),
    "data.format": ("xml", "plain"),
    "data.max_length": ("0", "128"),
    "data.relationships": ("[Mum]", "{Mum: family}"),
    "data.relationship_in_prompt": ("maybe", "false"),
    "data.keep_splits_of": ("''", "null"),
    "lora.r": ("0", "8"),
    "lora.alpha": ("0", "16"),
    "lora.dropout": ("1", "0.1"),
    "quant.mode": ("int8", "fp4"),
    "quant.compute_dtype": ("fp8", "float16"),
    "model.dtype": ("fp8", "float32"),
    "generation.max_new_tokens": ("0", "8"),
    "generation.temperature": ("0", "0.7"),
    "generation.top_p": ("1.5", "0.9"),
    "generation.top_k": ("-1", "40"),
    "generation.repetition_penalty": ("0", "1.1"),
    "generation.stop_eval": ("beam", "sample"),
    "generation.engine": ("vllm", "transformers"),
    "generation.engine_quant": ("q4", "f16"),
    "feedback.weight": ("-1", "0"),
    "feedback.share": ("1", "0.5"),
    "feedback.include_good": ("maybe", "false"),
    "feedback.preference": ("maybe", "true"),
    "feedback.beta": ("0", "0.5"),
    "feedback.preference_weight": ("0", "2"),
    "feedback.preference_batch": ("0", "2"),
    "trainer.max_steps": ("0", "-1"),
    "trainer.max_epochs": ("0", "3"),
    "trainer.devices": ("gpu", "1"),
    "trainer.num_nodes": ("0", "1"),
    "trainer.accumulate_grad_batches": ("0", "4"),
    "trainer.val_check_interval": ("0", "0.5"),
    "trainer.check_val_every_n_epoch": ("0", "null"),
    "trainer.gradient_clip_val": ("-1", "1.0"),
    "optimizer.lr": ("0", "1e-4"),
    "from_run_lr_scale": ("0", "1"),
    "optimizer.weight_decay": ("-0.1", "0.01"),
    "datamodule.batch_size": ("0", "4"),
    "datamodule.eval_batch_size": ("0", "4"),
    "callbacks.model_checkpoint.last_every_n_steps": ("-1", "0"),
    "callbacks.early_stopping.patience": ("-1", "2"),
    "callbacks.stop_at.step": ("0", "5"),
}
EVALUATE_SETTINGS = {
    "eval.split": ("dev", "val"),
    "eval.max_examples": ("0", "null"),
    "eval.batch_size": ("0", "4"),
    "eval.device": ("gpu0", "cuda:1"),
    "eval.quantized": ("maybe", "false"),
    "eval.parent": ("maybe", "true"),
    "decoding.samples": ("0", "2"),
    "decoding.greedy": ("maybe", "false"),
    "intervals.resamples": ("10", "500"),
    "memorization.max_indexed_chars": ("0", "1000"),
    "relationships.min_examples": ("1", "5"),
    "relationships.fidelity": ("maybe", "false"),
    "relationships.min_train_replies": ("1", "5"),
}


def train_problems(override: str) -> str:
    """The one-line error of `python train.py <override>` (on the sample data), or "" when it passes."""
    key = override.partition("=")[0]
    if key.startswith("callbacks.stop_at."):
        overrides = [STOP_AT, f"+{override}"]
    else:
        overrides = [GROUP_OF[key], override] if key in GROUP_OF else [override]
    try:
        cfg = compose("train", overrides, output_dir="out")
        normalize(cfg)
        validate(cfg)
    except ReplicaInputError as err:
        return str(err)
    return ""


def evaluate_problems(override: str) -> str:
    return "; ".join(setting_problems(compose("evaluate", ["run_dir=x", override], output_dir="out")))


@pytest.mark.parametrize("key", sorted(TRAIN_SETTINGS))
def test_a_train_setting_refuses_a_bad_value_by_name_and_takes_a_good_one(key):
    bad, good = TRAIN_SETTINGS[key]
    assert key in train_problems(f"{key}={bad}")
    assert train_problems(f"{key}={good}") == ""


@pytest.mark.parametrize("key", sorted(EVALUATE_SETTINGS))
def test_an_evaluate_setting_refuses_a_bad_value_by_name_and_takes_a_good_one(key):
    bad, good = EVALUATE_SETTINGS[key]
    assert key in evaluate_problems(f"{key}={bad}")
    assert evaluate_problems(f"{key}={good}") == ""


def keys_with_rules() -> set[str]:
    """Every setting that carries a rule: the sections' fields (nested ones too), the run keys, evaluate's keys."""
    found = set()
    for section, schema in SECTIONS.items():
        for spec in fields(schema):
            nested = spec.default_factory if is_dataclass(spec.default_factory) else None
            for inner in fields(nested) if nested else [spec]:
                if inner.metadata.get("rule"):
                    found.add(".".join(filter(None, [section, spec.name if nested else None, inner.name])))
    return found | set(RUN_RULES) | set(EVALUATE_RULES)


def test_every_setting_with_a_rule_has_a_row_here():
    assert keys_with_rules() == set(TRAIN_SETTINGS) | set(EVALUATE_SETTINGS)
