"""One sampling block: a run records `generation`, and `replica chat` / `replica serve` start from it; their flags
override only what they give. Real CLI processes on a real tiny trained run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import train_tiny
from tests.serve_helpers import Server, call, replica_cli

BLOCK_TOKENS = 7  # the run's generation.max_new_tokens
BLOCK_TOP_P = 0.5
ASK = "ciao, stasera ci sei?"


@pytest.fixture(scope="module")
def greedy_run(tmp_path_factory) -> Path:
    """A run whose block says: greedy, at most 7 new tokens, top_p 0.5 (used once a flag turns sampling on)."""
    overrides = ["generation.do_sample=false", f"generation.max_new_tokens={BLOCK_TOKENS}", f"generation.top_p={BLOCK_TOP_P}"]
    _, run = train_tiny(tmp_path_factory.mktemp("sampling-block"), overrides)
    return run


def sampling_line(result) -> str:
    assert result.returncode == 0, result.stderr[-2000:]
    [line] = [line for line in result.stderr.splitlines() if line.startswith("sampling: ")]
    return line


@pytest.mark.slow  # trains a tiny run
def test_the_run_folder_records_the_block(greedy_run):
    recorded = json.loads((greedy_run / "adapter" / "replica.json").read_text())["config"]["generation"]
    assert recorded["do_sample"] is False and recorded["max_new_tokens"] == BLOCK_TOKENS
    assert recorded["top_p"] == BLOCK_TOP_P and recorded["stop_eval"] == "greedy"


@pytest.mark.slow  # trains a tiny run
def test_chat_without_flags_uses_the_runs_block(greedy_run):
    plain = replica_cli("chat", greedy_run, "--once", ASK)
    assert sampling_line(plain) == f"sampling: greedy, max_new_tokens {BLOCK_TOKENS}"
    forced = replica_cli("chat", greedy_run, "--once", ASK, "--greedy", "--max-new-tokens", str(BLOCK_TOKENS))
    assert plain.stdout == forced.stdout  # the same reply as asking for the block's settings by flag


@pytest.mark.slow  # trains a tiny run
def test_chat_flags_override_only_what_they_give(greedy_run):
    result = replica_cli("chat", greedy_run, "--once", ASK, "--no-greedy", "--temperature", "1.5", "--seed", "3")
    assert sampling_line(result) == (
        f"sampling: temperature 1.5, top_p {BLOCK_TOP_P}, top_k 0, repetition_penalty 1.0, max_new_tokens {BLOCK_TOKENS}"
    )


@pytest.mark.slow  # trains a tiny run
def test_chat_top_k_and_repetition_penalty_flags_take_effect(greedy_run):
    """--top-k 1 samples among one token: at any temperature and seed it replies exactly as greedy decoding does."""
    greedy = replica_cli("chat", greedy_run, "--once", ASK, "--greedy")
    top1 = replica_cli("chat", greedy_run, "--once", ASK, "--no-greedy", "--temperature", "2.0", "--top-k", "1",
                       "--repetition-penalty", "1.3", "--seed", "11")
    assert sampling_line(top1) == (
        f"sampling: temperature 2.0, top_p {BLOCK_TOP_P}, top_k 1, repetition_penalty 1.3, max_new_tokens {BLOCK_TOKENS}"
    )
    top1_plain = replica_cli("chat", greedy_run, "--once", ASK, "--no-greedy", "--temperature", "2.0", "--top-k", "1",
                             "--seed", "12")
    assert sampling_line(top1_plain) and top1_plain.stdout == greedy.stdout


def test_chat_help_says_the_default_comes_from_the_run():
    result = replica_cli("chat", "--help")
    for flag in ("--temperature", "--top-p", "--max-new-tokens", "--greedy"):
        assert flag in result.stdout
    assert " ".join(result.stdout.split()).count("the run's generation block") >= 4  # help text wraps lines


def completion(url: str, **settings) -> dict:
    answer = call(url, "POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": ASK}], **settings})
    assert answer.status == 200, answer.raw
    return answer.json()


@pytest.mark.slow  # trains a tiny run
def test_serve_without_flags_answers_with_the_runs_block(greedy_run, tmp_path):
    server = Server(greedy_run, tmp_path / "serve.log")
    try:
        default = completion(server.url, seed=5)  # no temperature, no max_tokens: the run's block decides
        greedy = completion(server.url, seed=6, temperature=0, max_tokens=BLOCK_TOKENS)
    finally:
        server.stop()
    assert default["choices"][0]["message"]["content"] == greedy["choices"][0]["message"]["content"]
    assert default["usage"]["completion_tokens"] <= BLOCK_TOKENS


@pytest.mark.slow  # trains a tiny run
def test_serve_flags_override_the_block(greedy_run, tmp_path):
    server = Server(greedy_run, tmp_path / "serve.log", "--temperature", "2", "--max-tokens", "24")
    try:
        greedy = completion(server.url, temperature=0, max_tokens=24)["choices"][0]["message"]["content"]
        sampled = [completion(server.url, seed=seed) for seed in range(6)]
    finally:
        server.stop()
    assert any(reply["choices"][0]["message"]["content"] != greedy for reply in sampled)  # --temperature 2 samples
    assert max(reply["usage"]["completion_tokens"] for reply in sampled) > BLOCK_TOKENS  # --max-tokens 24 is the limit


@pytest.mark.slow  # trains a tiny run
@pytest.mark.parametrize("source", ["run", "merged"])
def test_ollama_modelfile_samples_as_the_runs_block(greedy_run, tmp_path, source):
    """Exported from the run, or from a `replica merge` folder of it: the Modelfile samples as the run's block."""
    exported = greedy_run
    if source == "merged":
        exported = tmp_path / "merged"
        merged = replica_cli("merge", greedy_run, "--out", exported)
        assert merged.returncode == 0, merged.stderr[-2000:]
    result = replica_cli("export", exported, "--gguf", "--quant", "f16", "--out", tmp_path / "gguf", "--ollama")
    assert result.returncode == 0, result.stderr[-2000:]
    lines = (tmp_path / "gguf" / "Modelfile").read_text(encoding="utf-8").splitlines()
    assert "PARAMETER temperature 0" in lines  # the block does not sample
    assert f"PARAMETER num_predict {BLOCK_TOKENS}" in lines and f"PARAMETER top_p {BLOCK_TOP_P}" in lines
