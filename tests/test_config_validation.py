"""The composed Hydra tree is validated up front: every problem in one ReplicaInputError, documented presets."""

from __future__ import annotations

import pytest

from replica.config import check_overrides, compose, validate
from replica.errors import ReplicaInputError


def problems_of(overrides: list[str]) -> str:
    with pytest.raises(ReplicaInputError) as caught:
        validate(compose("train", overrides, output_dir="."))
    message = str(caught.value)
    assert "\n" not in message, "the CLI prints one line"
    return message


def test_default_train_config_is_valid():
    cfg = compose("train", [], output_dir=".")
    validate(cfg)
    assert cfg.data.format == "role_tokens" and cfg.model.tiny is not None


def test_wrong_type_is_reported_with_its_key():
    message = problems_of(["lora.r=abc"])
    assert "lora.r" in message and "abc" in message


def test_bad_choice_lists_the_allowed_values():
    message = problems_of(["data.format=xml"])
    assert "data.format='xml'" in message
    assert all(choice in message for choice in ("role_tokens", "plain", "chat_template"))


def test_context_min_above_context_max_is_rejected():
    message = problems_of(["data.context_min=9", "data.context_max=2"])
    assert "data.context_min=9" in message and "data.context_max=2" in message


@pytest.mark.parametrize("split", ["[0.5,0.1,0.1]", "[0.8,0.2]", "[1.0,0.5,-0.5,0.0]"])
def test_bad_split_is_rejected(split):
    assert "data.split" in problems_of([f"data.split={split}"])


def test_lora_rank_and_dropout_ranges():
    assert "lora.r" in problems_of(["lora.r=0"])
    assert "lora.dropout" in problems_of(["lora.dropout=1.5"])


def test_all_problems_are_reported_in_one_message():
    message = problems_of([
        "lora.r=abc", "data.format=xml", "data.context_min=9", "data.context_max=2", "data.split=[0.5,0.1,0.1]",
    ])
    for key in ("lora.r", "data.format", "data.context_min", "data.split"):
        assert key in message, f"{key} missing from: {message}"


def test_unknown_key_in_a_schema_section_lists_valid_keys():
    message = problems_of(["+data.formt=plain"])
    assert "data.formt is not a valid key" in message and "format" in message


def test_unknown_override_lists_valid_keys_of_its_section():
    with pytest.raises(ReplicaInputError) as caught:
        check_overrides("train", ["lora.rr=3"])
    message = str(caught.value)
    assert "lora.rr" in message
    for key in ("alpha", "bias", "dropout", "r", "target_modules", "train_new_tokens"):
        assert key in message
    assert "+lora.rr=" in message


def test_unknown_override_under_a_chosen_group_option():
    with pytest.raises(ReplicaInputError, match="model.dtyp.*dtype"):
        check_overrides("train", ["model=deepseek7b", "model.dtyp=float16"])


def test_known_overrides_pass_the_check():
    known = ["lora.r=8", "model=deepseek7b", "logger=tensorboard", "logger.tensorboard.name=x", "data.format=plain",
             "+lora.new_key=1", "-q"]
    assert check_overrides("train", known) is None
    # beside an unknown key, the error names that key alone: none of the known ones is counted as a problem
    with pytest.raises(ReplicaInputError) as caught:
        check_overrides("train", [*known, "lora.rr=3"])
    assert str(caught.value).count("is not a config key") == 1
    assert str(caught.value).startswith("lora.rr is not a config key")
    # logger.tensorboard exists only once logger=tensorboard is chosen: the choice is applied before the check
    with pytest.raises(ReplicaInputError, match=r"^logger\.tensorboard\.name is not a config key"):
        check_overrides("train", ["logger.tensorboard.name=x"])


def test_mistral_r16_experiment_matches_the_reference():
    cfg = compose("train", ["experiment=mistral_r16"], output_dir=".")
    validate(cfg)
    assert (cfg.lora.r, cfg.lora.alpha, cfg.lora.dropout, cfg.lora.target_modules) == (16, 32, 0.05, "all-linear")
    assert cfg.optimizer.lr == 5e-5
    assert (cfg.data.context_min, cfg.data.context_max, cfg.data.max_length) == (6, 12, 1024)
    assert cfg.model.name_or_path == "mistralai/Mistral-7B-v0.3"
    assert cfg.model.role_tokens.eot == "[control_10]"


def test_deepseek_r64_experiment_matches_the_notebook():
    cfg = compose("train", ["experiment=deepseek_r64"], output_dir=".")
    validate(cfg)
    assert (cfg.lora.r, cfg.lora.alpha) == (64, 32)
    assert cfg.optimizer.lr == 2e-4
    assert cfg.trainer.max_epochs == 3
    assert cfg.data.context_max == 5
    assert cfg.model.name_or_path == "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B"


def test_model_group_choice_composes():
    cfg = compose("train", ["model=deepseek7b"], output_dir=".")
    validate(cfg)
    assert cfg.model.name_or_path == "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B" and cfg.model.tiny is None


def test_experiment_values_can_still_be_overridden():
    cfg = compose("train", ["experiment=mistral_r16", "lora.r=8"], output_dir=".")
    assert cfg.lora.r == 8 and cfg.optimizer.lr == 5e-5


def test_typo_in_a_group_option_names_the_available_options():
    with pytest.raises(ReplicaInputError) as caught:
        compose("train", ["model=deepsek7b"], output_dir=".")
    message = str(caught.value)
    assert "deepsek7b" in message and "\n" not in message
    assert "deepseek7b" in message, f"the fix (the valid options) should be in the message: {message}"
