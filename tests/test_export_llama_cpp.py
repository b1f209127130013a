"""The exported file in real llama.cpp (llama-cpp-python): same logits as the merged model, role tokens as single
control tokens, end-of-turn as end-of-generation, the pre-tokenizer table, Modelfile prompts tokenized as in
training, and (slow) a trained demo run and a SmolLM2 run whose clean-stop rate survives export."""

from __future__ import annotations

import copy
import json
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from replica.export.llama_cpp_run import is_end_of_generation, load_gguf
from tests.helpers import ROOT
from tests.test_export_gguf import (
    EOS,
    PRE_TOKENIZERS,
    Q8_0_TOLERANCE,
    ROLE,
    export_in_process,
    make_merged,
    probe_prompts,
    replica,
)
from tests.test_export_modelfile import (
    OLLAMA_ROLE,
    conversations,
    exported,  # noqa: F401 (the exported-folders fixture, shared)
    formatter_for,
    modelfile_template,
    ollama_messages,
    parse_go_template,
    render_go_template,
)

TOKENIZER_TEXTS = [
    "ciao, come stai? 😂😂 tutto bene",
    "it's 12345 o'clock, isn't it? I'LL see; you'd've",
    "Prices: 3.50€ or 1,000,000 lire!!",
    "Ünïcödé — ok\n\n  spaced   out\t\ttabs \n",
    "   leading spaces and trailing   ",
    "中文 日本語 한국어 العربية ελληνικά",
    "line one\r\nline two\n\n\nthree",
]


@pytest.fixture
def llm_for():
    opened = []

    def load(path: Path, **kwargs):
        llm = load_gguf(path, **kwargs)
        opened.append(llm)
        return llm

    yield load
    for llm in opened:
        llm.close()


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_llama_cpp_logits_match_the_merged_model(tmp_path, arch, llm_for):
    folder = make_merged(tmp_path / "merged", arch)
    merged = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    for quant, tolerance in (("f16", 1e-2), ("q8_0", Q8_0_TOLERANCE)):
        llm = llm_for(export_in_process(folder, quant), logits_all=True)
        for ids in probe_prompts():
            llm.reset()
            llm.eval(ids)
            with torch.no_grad():
                expected = merged(torch.tensor([ids])).logits[0].numpy()
            assert np.abs(np.asarray(llm.scores[: len(ids)]) - expected).max() <= tolerance, (arch, quant)


def test_role_tokens_are_single_tokens_and_end_of_turn_ends_generation(tmp_path, llm_for):
    folder = make_merged(tmp_path / "merged", "qwen2")
    vocab = AutoTokenizer.from_pretrained(folder).get_vocab()
    llm = llm_for(export_in_process(folder, "q8_0"))
    for marker in (ROLE["me"], ROLE["them"], ROLE["eot"]):
        assert llm.tokenize(marker.encode(), add_bos=False, special=True) == [vocab[marker]], marker
    assert is_end_of_generation(llm, vocab[ROLE["eot"]])
    assert is_end_of_generation(llm, vocab[EOS])  # the base's own EOS still ends generation
    assert not is_end_of_generation(llm, vocab[ROLE["them"]])  # a leak, not a stop: it must be measured as one


@pytest.mark.parametrize("pre", sorted(PRE_TOKENIZERS))
def test_each_known_pre_tokenizer_tokenizes_like_transformers(tmp_path, pre, llm_for):
    folder = make_merged(tmp_path / "merged", "llama", pre=pre)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    llm = llm_for(export_in_process(folder, "f16"), n_ctx=64)
    for text in TOKENIZER_TEXTS:
        assert llm.tokenize(text.encode(), add_bos=False, special=False) == tokenizer(text, add_special_tokens=False)["input_ids"], text


def test_the_qwen2_tokenizer_transformers_builds_tokenizes_like_llama_cpp(tmp_path, llm_for):
    folder = make_merged(tmp_path / "merged", "qwen2")  # transformers rebuilds it as Qwen2's (NFC + qwen2 split)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    llm = llm_for(export_in_process(folder, "f16"), n_ctx=64)
    for text in TOKENIZER_TEXTS:  # already NFC, as typed text is
        assert llm.tokenize(text.encode(), add_bos=False, special=False) == tokenizer(text, add_special_tokens=False)["input_ids"], text


def test_llama_cpp_tokenizes_the_modelfile_prompt_as_training_did(exported, llm_for):  # noqa: F811
    fmt, folder = exported
    formatter = formatter_for(fmt, folder)
    nodes = parse_go_template(modelfile_template(folder))
    llm = llm_for(folder / "gguf" / "replica-q8_0.gguf", n_ctx=64)
    for context in conversations():
        messages = [{"Role": OLLAMA_ROLE[t["role"]], "Content": t["text"]} for t in context]
        prompt = render_go_template(nodes, {"Messages": messages})
        # llama.cpp adds BOS only where the file says so (add_bos_token), then parses the special tokens
        assert llm.tokenize(prompt.encode(), add_bos=llm.metadata.get("tokenizer.ggml.add_bos_token") == "true",
                            special=True) == formatter.prompt_ids(context)


@pytest.mark.slow
def test_a_trained_demo_run_still_stops_after_export(tmp_path):
    from replica.export.proof import after_export, before_export, test_contexts
    from replica.export.source import load_source
    from replica.inference.jobs import Sampling
    from tests.helpers import train_tiny

    _, run = train_tiny(tmp_path, ["trainer.max_steps=120"])
    result = replica("export", run, "--gguf", "--quant", "q8_0")
    assert result.returncode == 0, result.stderr
    source = load_source(run)
    contexts = test_contexts(run, 32)
    sampling = Sampling(do_sample=True, temperature=0.8, top_p=0.95, max_new_tokens=64, seed=random.Random(0).randrange(1000))
    before = before_export(source, contexts, sampling)
    after = after_export(run / "gguf" / "replica-q8_0.gguf", source.formatter, contexts, sampling)
    assert before.clean_stop_rate > 0.5, before  # the run learned to stop: otherwise the comparison proves nothing
    assert after.clean_stop_rate >= before.clean_stop_rate - 0.05, (before, after)

    bench = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "export_gguf.py"), str(run), "--quants", "q8_0", "--prompts", "4",
         "--max-new-tokens", "16"], capture_output=True, text=True, timeout=600, check=False,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert bench.returncode == 0, bench.stderr[-3000:]
    report = json.loads(bench.stdout.strip().splitlines()[-1])
    assert report["architecture"] == "qwen2" and report["prompts"] == 4
    row = report["quants"]["q8_0"]
    assert row["size_mb"] > 0 and row["write_s"] >= 0 and row["speed_ratio"] > 0
    assert row["max_logit_diff_transformers"] < 1.0 and 0 <= row["clean_stop_rate"] <= 1


SMOLLM2_RUN = [  # the SmolLM2-135M-Instruct demo (llama architecture, its own chat template), as short as training gets
    "experiment=smollm2_demo", "trainer.max_steps=2", "trainer.val_check_interval=2",
    "trainer.enable_progress_bar=false", "callbacks.stop_sequence_eval=null", "datamodule.batch_size=4",
    "data.max_length=256",
]


@pytest.mark.slow
def test_a_smollm2_run_exports_to_llama_cpp_faithfully(tmp_path, llm_for):
    from replica.export.proof import (
        after_export,
        before_export,
        llama_cpp_logit_diff,
        test_contexts,
    )
    from replica.export.source import load_source
    from replica.inference.jobs import Sampling
    from tests.helpers import paths, run_train

    trained = run_train([*SMOLLM2_RUN, *paths(tmp_path)], tmp_path)
    assert trained.returncode == 0, trained.stderr[-3000:]
    run = next((tmp_path / "logs").glob("*/runs/*"))
    result = replica("export", run, "--gguf", "--quant", "f16", "--ollama")
    assert result.returncode == 0, result.stderr
    path = run / "gguf" / "replica-f16.gguf"
    source = load_source(run)
    formatter = source.formatter
    contexts = test_contexts(run, 24)
    llm = llm_for(path, n_ctx=512)
    assert llm.metadata["general.architecture"] == "llama"
    assert is_end_of_generation(llm, formatter.end_of_turn_id)
    nodes = parse_go_template(modelfile_template(run))
    whole = copy.copy(formatter)
    whole.max_length = 1 << 20  # Ollama truncates by its own num_ctx: compare whole conversations
    # the demo's sample is labelled: Ollama fills {{ .System }} from the Modelfile's SYSTEM line ("to: friend")
    system = json.loads(re.search(r"^SYSTEM (.*)$", (run / "gguf" / "Modelfile").read_text("utf-8"), re.MULTILINE).group(1))
    assert system == "to: friend"
    for context in contexts:  # the Modelfile prompt, tokenized by llama.cpp, is the training prompt
        prompt = render_go_template(nodes, {"Messages": ollama_messages(context), "System": system})
        # no BOS added: add_bos_token is false for a chat_template run (the template holds its own markers)
        assert llm.tokenize(prompt.encode(), add_bos=False, special=True) == whole.prompt_ids(context, "friend")
    # f16 rounding alone moves these logits (up to ~40) by ~0.05 in transformers; llama.cpp measured 0.09
    assert llama_cpp_logit_diff(source, path, [formatter.prompt_ids(c, "friend") for c in contexts[:4]]) <= 0.25
    # greedy: both sides pick the same tokens unless f16 rounding flips a near tie
    sampling = Sampling(do_sample=False, max_new_tokens=48)
    before = before_export(source, contexts, sampling)
    after = after_export(path, formatter, contexts, sampling)
    assert after.clean_stop_rate >= before.clean_stop_rate - 0.05, (before, after)
