"""The two generation engines on a real tiny run: llama.cpp (the run's own GGUF, continuous batching, prefix reuse)
against transformers, the GGUF cache in the run folder, and the engine choice through the real `replica chat`."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pytest

from tests.helpers import ROOT, assert_one_line_error, train_tiny
from tests.serve_helpers import replica_cli

pytestmark = pytest.mark.slow
CONTEXTS = [[{"role": "them", "text": text}] for text in (
    "ciao, come va?", "stasera pizza?", "hai visto la partita?", "dove sei?", "happy birthday 🎉", "ok ci sentiamo",
    "mi manchi", "film stasera?", "sono in ritardo", "che fai?", "arrivo tra 5 minuti", "buonanotte",
)]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    _, run = train_tiny(tmp_path_factory.mktemp("engines"))
    return run


@pytest.fixture(scope="module")
def info(run_dir):
    from replica.model.run_dir import inspect_run

    return inspect_run(run_dir)


@pytest.fixture(scope="module")
def llama(info):
    """The run's llama.cpp engine on an f32 GGUF (lossless: comparable with the unquantized transformers model)."""
    from replica.inference.engines import open_run_engines

    engine = open_run_engines(info, engine="llama_cpp", quant="f32", sides=(True,), slots=4, max_new_tokens=64)[True]
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def full_precision(run_dir):
    """The transformers engine on the run's base loaded unquantized (the same weights the f32 GGUF holds)."""
    from replica.inference.loading import load_run
    from replica.inference.transformers_engine import TransformersEngine

    model, formatter, _ = load_run(run_dir, quantized=False)
    return TransformersEngine(model, formatter)


def sampled(seed: int = 5, **settings):
    from replica.inference.jobs import Sampling

    return Sampling(**{"max_new_tokens": 24, "do_sample": True, "temperature": 1.0, "top_p": 0.95, "seed": seed, **settings})


def test_greedy_replies_match_transformers_on_the_same_weights(llama, full_precision):
    from replica.inference.generation import generate_replies
    from replica.inference.jobs import Sampling

    greedy = Sampling(max_new_tokens=16, do_sample=False)
    ours = generate_replies(llama, CONTEXTS, greedy, batch_size=4)
    reference = generate_replies(full_precision, CONTEXTS, greedy, batch_size=4)
    same = [a.token_ids == b.token_ids for a, b in zip(ours, reference)]
    assert sum(same) >= len(CONTEXTS) - 1, same  # f32 weights; llama.cpp keeps its KV cache in f16
    assert [a.finish_reason for a in ours] == [b.finish_reason for b in reference] or sum(same) < len(CONTEXTS)
    assert all(reply.prompt_tokens == len(llama.formatter.prompt_ids(context)) for reply, context in zip(ours, CONTEXTS))


def test_a_seeded_reply_does_not_depend_on_its_neighbours_or_the_cache(llama):
    """The same seed gives the same reply alone, among eleven others, and again with its prompt already cached."""
    from replica.inference.generation import generate_replies

    together = generate_replies(llama, CONTEXTS, sampled(), batch_size=4)
    assert len({tuple(reply.token_ids) for reply in together}) > 1, "all replies equal: the check below proves nothing"
    for index in (0, 5, 11):
        alone = generate_replies(llama, [CONTEXTS[index]], replace(sampled(), seed=5 + index), batch_size=1)[0]
        assert alone.token_ids == together[index].token_ids


def test_sampling_settings_reach_llama_cpp(llama, full_precision):
    """top_p near 0 is greedy; temperature moves replies; the repetition penalty (prompt tokens included) penalises
    as transformers does."""
    from replica.inference.generation import generate_replies
    from replica.inference.jobs import Sampling

    context = CONTEXTS[:1]
    greedy = generate_replies(llama, context, Sampling(max_new_tokens=24, do_sample=False))[0]
    hot = [generate_replies(llama, context, sampled(seed, temperature=2.0, top_p=1.0))[0] for seed in range(4)]
    assert any(reply.token_ids != greedy.token_ids for reply in hot)
    narrow = [generate_replies(llama, context, sampled(seed, temperature=2.0, top_p=1e-9))[0] for seed in range(4)]
    assert all(reply.token_ids == greedy.token_ids for reply in narrow)
    penalty = Sampling(max_new_tokens=24, do_sample=False, repetition_penalty=1.8)
    penalised = generate_replies(llama, CONTEXTS, penalty)
    assert penalised[0].token_ids != greedy.token_ids
    reference = generate_replies(full_precision, CONTEXTS, penalty)
    first_steps = [a.token_ids[:4] == b.token_ids[:4] for a, b in zip(penalised, reference)]
    assert sum(first_steps) >= len(CONTEXTS) - 1, first_steps  # past a few steps a near tie (f16 KV cache) may flip


def test_stop_strings_and_token_limits(llama):
    from replica.inference.jobs import Job

    jobs = [Job(CONTEXTS[i], sampled(i, temperature=1.5, max_new_tokens=30), stop=("a", "e")) for i in range(6)]
    replies = llama.generate(jobs)
    assert all("a" not in reply.text and "e" not in reply.text for reply in replies)
    limited = llama.generate([Job(CONTEXTS[0], sampled(1, temperature=2.0, max_new_tokens=3))])[0]
    assert len(limited.token_ids) <= 3 and (limited.finish_reason == "length") == (len(limited.token_ids) == 3)


def test_streamed_pieces_add_up_to_the_reply(llama):
    from replica.inference.jobs import Job

    for seed in range(3):
        pieces: list[str] = []
        [reply] = llama.generate([Job(CONTEXTS[1], sampled(seed, temperature=1.5), on_text=pieces.append)])
        assert "".join(pieces) == reply.text


def test_a_chats_next_turn_reads_only_its_new_tokens(info, llama):
    """The fifth turn of a conversation reuses the KV cache of the first four: far fewer prompt tokens are read, and
    the greedy reply is the one a cold engine gives (sampled replies may differ at a near tie: a cached prefix was
    computed in other chunks, which moves logits by ~1e-6)."""
    from replica.inference.engines import open_run_engines
    from replica.inference.generation import generate_replies
    from replica.inference.jobs import Sampling

    greedy = Sampling(max_new_tokens=24, do_sample=False)
    turns: list[dict] = []
    for index, text in enumerate(("ciao!", "come stai?", "stasera?", "dove?", "ok a dopo")):
        turns.append({"role": "them", "text": text})
        read_before = llama.prompt_tokens_read
        [reply] = generate_replies(llama, [list(turns)], sampled(index) if index < 4 else greedy, batch_size=1)
        read = llama.prompt_tokens_read - read_before
        turns.append({"role": "me", "text": reply.text or "ok"})
    prompt = len(llama.formatter.prompt_ids(turns[:-1]))
    assert read < prompt / 2, (read, prompt)
    cold = open_run_engines(info, engine="llama_cpp", quant="f32", sides=(True,), slots=1, max_new_tokens=64)[True]
    try:
        [fresh] = generate_replies(cold, [turns[:-1]], greedy, batch_size=1)
        assert cold.prompt_tokens_read == prompt
    finally:
        cold.close()
    assert fresh.token_ids == reply.token_ids


def test_samples_of_one_context_read_its_prompt_once(llama):
    """Samples of many conversations in one `generate` call, given sample by sample (the worst order): a slot that
    read a conversation takes its next sample and re-reads one token, for as long as the call lasts (past the
    fairness wait between submissions). Only at the end, when fewer conversations are left than slots, may idle
    slots read one again to share its samples."""
    from replica.inference.generation import generate_replies

    samples, roles = 6, ("them", "me", "them", "me", "them")
    conversations = [[{"role": role, "text": CONTEXTS[(start + turn) % len(CONTEXTS)][0]["text"]}
                      for turn, role in enumerate(roles)] for start in range(len(CONTEXTS))]
    repeated = [conversation for _ in range(samples) for conversation in conversations]
    lengths = [len(llama.formatter.prompt_ids(conversation)) for conversation in conversations]
    read_before = llama.prompt_tokens_read
    replies = generate_replies(llama, repeated, sampled(7, max_new_tokens=64, temperature=2.0), batch_size=4)
    read = llama.prompt_tokens_read - read_before
    assert len(replies) == len(repeated)
    once_each = sum(lengths) + len(repeated) - len(conversations)
    assert read <= 1.25 * once_each, (read, once_each)


def test_many_jobs_from_many_threads_each_get_their_own_reply(llama):
    """More jobs than slots, submitted from 8 threads at once: every reply is the one its job gets alone."""
    from replica.inference.jobs import Job

    jobs = [Job(CONTEXTS[i % len(CONTEXTS)], sampled(100 + i)) for i in range(16)]
    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(lambda job: llama.submit(job).result(), jobs))
    for job, outcome in zip(jobs[:4], outcomes):
        assert llama.generate([job])[0].token_ids == outcome.reply.token_ids
    assert max(outcome.batch_size for outcome in outcomes) > 1  # jobs really generated together


def test_the_gguf_is_built_once_per_adapter_and_rebuilt_when_it_changes(tmp_path, run_dir):
    """Two processes asking at once build one file; an adapter that changes gets a new file, the old one goes."""
    import shutil

    from replica.inference.gguf_cache import ENGINE_DIR

    run = tmp_path / "run"
    shutil.copytree(run_dir, run, ignore=shutil.ignore_patterns(ENGINE_DIR))
    code = ("import sys; from replica.model.run_dir import inspect_run; from replica.inference.gguf_cache import "
            "run_gguf_paths; print(run_gguf_paths(inspect_run(sys.argv[1]), 'q8_0', (True, False))[True])")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    racers = [subprocess.Popen([sys.executable, "-c", code, str(run)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(racer.communicate(timeout=600), racer.returncode) for racer in racers]
    assert all(code == 0 for _, code in results), results
    assert len({out.strip() for (out, _), _ in results}) == 1
    assert sum("building the llama.cpp model" in err for (_, err), _ in results) == 1  # the other one waited, then read it
    built = sorted(p.name for p in (run / ENGINE_DIR).glob("*.gguf"))
    assert len(built) == 2 and {name.split("-")[0] for name in built} == {"replica", "base"}

    adapter = run / "adapter" / "adapter_model.safetensors"
    adapter.write_bytes(adapter.read_bytes())  # same content: the same file is used
    again = subprocess.run([sys.executable, "-c", code, str(run)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert "building" not in again.stderr and sorted(p.name for p in (run / ENGINE_DIR).glob("*.gguf")) == built
    _retrain_one_step(run)
    changed = subprocess.run([sys.executable, "-c", code, str(run)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert changed.returncode == 0, changed.stderr
    now = sorted(p.name for p in (run / ENGINE_DIR).glob("*.gguf"))
    assert [n for n in now if n.startswith("base")] == [n for n in built if n.startswith("base")]  # the base did not change
    assert [n for n in now if n.startswith("replica")] != [n for n in built if n.startswith("replica")]
    assert len(now) == 2 and Path(changed.stdout.strip()).name in now


def _retrain_one_step(run: Path) -> None:
    """Change the adapter's weights as a new training step would (one LoRA matrix nudged)."""
    from safetensors.torch import load_file, save_file

    path = run / "adapter" / "adapter_model.safetensors"
    weights = load_file(str(path))
    name = next(key for key in weights if "lora_B" in key)
    weights[name] = weights[name] + 0.01
    save_file(weights, str(path), metadata={"format": "pt"})


def test_replica_chat_on_either_engine_and_a_quiet_console(run_dir):
    """The real CLI: auto picks llama.cpp on this CPU; both engines answer; a seeded reply repeats across processes;
    no third-party notice reaches the console."""
    auto = replica_cli("chat", run_dir, "--once", "ciao, come va?", "--seed", "3", timeout=600)
    assert auto.returncode == 0, auto.stderr
    assert "engine: llama_cpp" in auto.stderr
    again = replica_cli("chat", run_dir, "--once", "ciao, come va?", "--seed", "3", "--engine", "llama_cpp", timeout=600)
    assert again.stdout == auto.stdout and auto.stdout.strip()
    other = replica_cli("chat", run_dir, "--once", "ciao, come va?", "--seed", "3", "--engine", "transformers", timeout=600)
    assert other.returncode == 0 and "engine: transformers" in other.stderr
    for result in (auto, again, other):
        shown = [line for line in result.stderr.splitlines() if line.strip()]
        assert not [line for line in shown if "kernels-community" in line or line.startswith(("llama_", "load", "llm_"))], shown
        assert all(line.startswith(("replica:", "engine:", "sampling:")) for line in shown), shown


def test_a_bad_engine_flag_is_one_line(run_dir):
    assert_one_line_error(replica_cli("chat", run_dir, "--engine", "vllm", "--once", "x"), "replica chat: error:", "--engine")
