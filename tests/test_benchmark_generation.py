"""End-to-end runs of benchmarks/generation_speed.py and benchmarks/evaluate_engines.py on a tiny run: the real
commands, their JSON's structure and the relations that hold whatever the speed (no timing targets here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import train_tiny

ROOT = Path(__file__).resolve().parents[1]
PROMPTS, MAX_NEW_TOKENS, CLIENTS, CONVERSATIONS = 4, 8, 2, 2


def bench(script: str, *args, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, f"benchmarks/{script}", *map(str, args)], check=False, cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def last_json(done: subprocess.CompletedProcess) -> dict:
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    return train_tiny(tmp_path_factory.mktemp("genbench"))[1]


@pytest.mark.slow
def test_generation_benchmark_compares_llama_cpp_and_the_server(tiny_run):
    done = bench("generation_speed.py", tiny_run, "--prompts", PROMPTS, "--max-new-tokens", MAX_NEW_TOKENS,
                 "--clients", CLIENTS, "--conversations", CONVERSATIONS)
    result = last_json(done)
    direct, single, many = result["llama_cpp_single"], result["replica_single"], result["replica_concurrent"]
    assert result["prompts"] == PROMPTS and result["max_new_tokens"] == MAX_NEW_TOKENS
    assert result["replica_engine"] == "llama_cpp"  # the server's default engine on a CPU
    assert many["clients"] == CLIENTS and many["requests"] == PROMPTS
    for figures in (direct, single, many):
        assert 0 < figures["tokens"] <= PROMPTS * MAX_NEW_TOKENS and figures["seconds"] > 0
        assert figures["tokens_per_s"] == pytest.approx(figures["tokens"] / figures["seconds"], rel=0.01)
    assert direct["prompt_tokens"] == single["prompt_tokens"] > 0  # the server built the very prompts llama.cpp got
    assert single["same_prompt_length"] == PROMPTS
    assert result["single_stream_ratio"] == pytest.approx(single["tokens_per_s"] / direct["tokens_per_s"], rel=1e-3)
    assert result["concurrent_ratio"] == pytest.approx(many["tokens_per_s"] / direct["tokens_per_s"], rel=1e-3)
    ttft = result["ttft_fifth_turn"]
    assert len(ttft["warm_ms"]) == len(ttft["cold_ms"]) == CONVERSATIONS
    assert min(ttft["warm_ms"] + ttft["cold_ms"]) > 0 and ttft["warm_median_ms"] > 0 and ttft["cold_median_ms"] > 0
    assert ttft["prompt_tokens"] == ttft["cold_prompt_tokens"]  # the same fifth-turn requests, cached or not
    assert all(0 <= shared < tokens for shared, tokens in zip(ttft["cacheable_prefix_tokens"], ttft["prompt_tokens"]))
    assert result["cores"] >= 1 and len(result["loadavg_before"]) == len(result["loadavg_after"]) == 3
    assert "ratio" in done.stdout.splitlines()[-3]


@pytest.mark.slow
def test_engine_evaluation_benchmark_checks_llama_cpp_against_the_transformers_intervals(tiny_run, tmp_path):
    result = last_json(bench("evaluate_engines.py", tiny_run, "--max-examples", 4, "--quants", "q8_0", "--work", tmp_path))
    assert result["quants"] == ["q8_0"] and result["n_examples"] == 4
    assert result["wall_s"]["transformers"] > 0 and result["wall_s"]["q8_0"] > 0
    assert result["speedup"]["q8_0"] == pytest.approx(result["wall_s"]["transformers"] / result["wall_s"]["q8_0"], rel=0.01)
    work = Path(result["work"])
    for copy, engine in (("transformers", "transformers"), ("llama_cpp-q8_0", "llama_cpp")):
        metrics = json.loads((work / copy / "eval" / "metrics.json").read_text())
        assert metrics["meta"]["decoding"]["engine"] == engine  # each evaluation wrote its own copy's report
    assert not (tiny_run / "eval").exists()  # the run itself is left untouched
    verdicts = []
    for side in ("baseline", "finetuned"):
        rows = result["metrics"][side]
        assert {"perplexity", "clean_stop_rate", "style_similarity"} <= rows.keys()
        for row in rows.values():
            low, high = row["ci"]
            if row["q8_0"] is not None:
                assert row["q8_0_within"] == (low <= row["q8_0"] <= high)
                verdicts.append(row["q8_0_within"])
    assert result["within_interval"]["q8_0"] == f"{sum(verdicts)} of {len(verdicts)}"


def test_generation_benchmark_needs_a_run(tmp_path):
    for args in ((), (tmp_path / "nope",)):
        done = bench("generation_speed.py", *args, timeout=120)
        assert done.returncode == 2
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("generation_speed.py: error:") and "Traceback" not in done.stderr
    assert "python train.py experiment=smollm2_demo" in bench("generation_speed.py", timeout=120).stderr


def test_engine_evaluation_benchmark_rejects_a_missing_run_dir(tmp_path):
    done = bench("evaluate_engines.py", tmp_path / "nope", "--work", tmp_path / "work", timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().startswith("evaluate_engines.py: error:") and "Traceback" not in done.stderr
    assert not (tmp_path / "work").exists()
