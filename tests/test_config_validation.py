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


# ---- one validator per section: every entry point gives the same answer ----------------------------------------
CONTEXT_MIN_ZERO = "data.context_min=0 must be an integer >= 1"


def test_context_min_zero_gets_one_answer_from_train_and_prepare(tmp_path):
    from replica.prepare.config import parse_data_config
    from tests.helpers import assert_one_line_error, paths, run_train
    from tests.serve_helpers import replica_cli

    assert CONTEXT_MIN_ZERO in problems_of(["data.context_min=0"])
    trained = run_train(["data.context_min=0", *paths(tmp_path)], tmp_path)
    assert_one_line_error(trained, "train.py: error: invalid config", CONTEXT_MIN_ZERO)
    prepared = replica_cli("prepare", "data.context_min=0", *paths(tmp_path))
    assert_one_line_error(prepared, "replica: error: invalid config", CONTEXT_MIN_ZERO)
    data = compose("train", ["data.context_min=0"], output_dir=".").data
    with pytest.raises(ReplicaInputError, match=CONTEXT_MIN_ZERO):
        parse_data_config(data)  # what the data module and a run's dataset rebuild call


def test_generation_block_is_typed_and_checked():
    cfg = compose("train", [], output_dir=".")
    assert (cfg.generation.temperature, cfg.generation.top_p, cfg.generation.stop_eval) == (0.8, 0.95, "greedy")
    assert cfg.generation.seed == cfg.seed  # the run's seed
    with pytest.raises(ReplicaInputError, match="generation.temperature"):
        compose("train", ["generation.temperature=hot"], output_dir=".")
    message = problems_of(["generation.top_p=1.5", "generation.stop_eval=beam", "generation.max_new_tokens=0"])
    for problem in ("generation.top_p=1.5 must be a number in (0, 1]", "generation.stop_eval='beam' must be one of greedy|sample",
                    "generation.max_new_tokens=0"):
        assert problem in message


@pytest.mark.parametrize(("stop_eval", "sampled"), [("greedy", False), ("sample", True)])
def test_stop_sequence_eval_decodes_as_the_block_says(stop_eval, sampled):
    from hydra.utils import instantiate

    cfg = compose("train", [f"generation.stop_eval={stop_eval}", "generation.temperature=0.6"], output_dir=".")
    callback = instantiate(cfg.callbacks.stop_sequence_eval, formatter=None, examples=[])  # as the run builds it
    assert callback.sampling.do_sample is sampled and callback.sampling.temperature == 0.6
    assert callback.sampling.max_new_tokens == cfg.generation.max_new_tokens


def test_evaluate_decoding_left_null_takes_the_runs_block():
    from replica.settings import GenerationSection

    decoding = compose("evaluate", ["run_dir=x", "decoding.top_p=0.5"], output_dir=".").decoding
    run_config = {"generation": {"temperature": 0.3, "top_p": 0.9, "max_new_tokens": 20, "stop_eval": "greedy"}}
    effective = GenerationSection.of_run(run_config).under(decoding)
    assert (effective["temperature"], effective["top_p"], effective["max_new_tokens"]) == (0.3, 0.5, 20)
    assert effective["samples"] == decoding.samples


def test_data_timezone_must_be_a_known_zone():
    assert "data.timezone='Mars/Olympus' is not a known time zone" in problems_of(["data.timezone=Mars/Olympus"])
    validate(compose("train", ["data.timezone=Europe/Rome"], output_dir="."))


def test_cfg_job_prints_the_generation_defaults(tmp_path):
    from tests.helpers import run_train

    assert check_overrides("train", ["--cfg", "job", "-p", "generation", "lora.r=8"]) is None  # flag values are no overrides
    printed = run_train(["--cfg", "job", "--package", "generation", "generation.top_p=0.5"], tmp_path, timeout=300)
    assert printed.returncode == 0, printed.stderr[-2000:]
    assert "temperature: 0.8" in printed.stdout and "top_p: 0.5" in printed.stdout and "stop_eval: greedy" in printed.stdout
