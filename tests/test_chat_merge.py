"""`replica chat` and `replica merge` through the real CLI, on a real tiny trained run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.helpers import assert_one_line_error, train_tiny

MARKERS = ("<|me|>", "<|them|>", "<|eot|>", "<|endoftext|>", "<|pad|>")
ROOT = Path(__file__).resolve().parents[1]
CLI_TIMEOUT = 300


def replica(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "replica.cli", *map(str, args)],
        input=stdin, capture_output=True, text=True, cwd=ROOT, env=env, timeout=CLI_TIMEOUT,
    )


def assert_clean_reply(reply: str) -> None:
    """A reply (its messages one per line): no empty message, no role marker, no other-speaker prefix."""
    assert reply.strip(), "empty reply"
    assert not any(marker in reply for marker in MARKERS), reply
    for message in reply.split("\n"):
        assert message.strip() and message == " ".join(message.split()), reply
        assert not message.startswith(("A:", "B:")), reply


def printed_replies(stdout: str) -> list[str]:
    """The replies of an interactive chat: a line opening with `replica> `, plus the indented lines of its burst."""
    replies: list[str] = []
    for line in stdout.splitlines():
        if line.startswith("replica> "):
            replies.append(line.removeprefix("replica> "))
        else:
            assert replies and line.startswith(" " * len("replica> ")), stdout
            replies[-1] += "\n" + line.strip()
    return replies




@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    _, run = train_tiny(tmp_path_factory.mktemp("chat-merge"))
    return run


@pytest.fixture(scope="module")
def merged(run_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("merged-parent") / "merged"
    result = replica("merge", run_dir, "--out", out)
    assert result.returncode == 0, result.stderr
    return out


# ---- chat ----------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_chat_once_prints_one_clean_reply_line(run_dir):
    result = replica("chat", run_dir, "--once", "ciao come va?", "--seed", "1", "--max-new-tokens", "24")
    assert result.returncode == 0, result.stderr
    assert_clean_reply(result.stdout.rstrip("\n"))  # one line per message of the reply


@pytest.mark.slow
def test_chat_once_greedy_is_deterministic(run_dir):
    first = replica("chat", run_dir, "--once", "stasera pizza?", "--greedy", "--max-new-tokens", "16")
    second = replica("chat", run_dir, "--once", "stasera pizza?", "--greedy", "--max-new-tokens", "16")
    assert first.returncode == second.returncode == 0, first.stderr + second.stderr
    assert first.stdout == second.stdout


@pytest.mark.slow
def test_chat_interactive_through_stdin(run_dir):
    result = replica("chat", run_dir, "--seed", "3", "--context", "4", stdin="ciao\n/reset\ncome stai?\n/quit\nnot read\n")
    assert result.returncode == 0, result.stderr
    replies = printed_replies(result.stdout)
    assert len(replies) == 2, result.stdout
    for reply in replies:
        assert_clean_reply(reply)
    assert "/reset" in result.stderr and "/quit" in result.stderr  # the banner names the commands
    assert "ciao" not in result.stderr and "come stai" not in result.stderr  # the conversation is not logged


FIRST = "ciao! stasera andiamo al mare con tutti gli altri, porti tu la pizza e le birre? 🍕🍺"
SECOND = "come stai?"
GREEDY = ("--greedy", "--max-new-tokens", "16")


def replies_of(result: subprocess.CompletedProcess) -> list[str]:
    assert result.returncode == 0, result.stderr
    return printed_replies(result.stdout) if result.stdout.startswith("replica> ") else [result.stdout.rstrip("\n")]


@pytest.fixture(scope="module")
def fresh_greedy_reply(run_dir) -> str:
    """The greedy reply to SECOND with no conversation before it."""
    return replies_of(replica("chat", run_dir, "--once", SECOND, *GREEDY))[0]


SAMPLED = ("--temperature", "1.0", "--max-new-tokens", "16")  # the nth reply of a session samples with seed + n


@pytest.fixture(scope="module")
def fresh_seeded_reply(run_dir) -> str:
    """The reply to SECOND with no conversation before it, sampled with seed 11 (a session's second reply with
    --seed 10)."""
    return replies_of(replica("chat", run_dir, "--once", SECOND, "--seed", "11", *SAMPLED))[0]


@pytest.fixture(scope="module")
def remembered_reply(run_dir, fresh_seeded_reply) -> str:
    _, remembered = replies_of(replica("chat", run_dir, "--seed", "10", *SAMPLED, stdin=f"{FIRST}\n{SECOND}\n"))
    assert remembered != fresh_seeded_reply  # the first message changed the reply: the context is really used
    return remembered


@pytest.mark.slow
def test_reset_clears_what_the_replica_remembers(run_dir, fresh_seeded_reply, remembered_reply):
    _, after_reset = replies_of(replica("chat", run_dir, "--seed", "10", *SAMPLED, stdin=f"{FIRST}\n/reset\n{SECOND}\n"))
    assert after_reset == fresh_seeded_reply


@pytest.mark.slow
def test_context_option_limits_the_turns_sent(run_dir, fresh_seeded_reply, remembered_reply):
    options = ("--seed", "10", "--context", "1", *SAMPLED)
    _, with_one_turn = replies_of(replica("chat", run_dir, *options, stdin=f"{FIRST}\n{SECOND}\n"))
    assert with_one_turn == fresh_seeded_reply  # only the newest message was sent


@pytest.mark.slow
def test_chat_temperature_and_top_p_reach_the_sampler(run_dir, fresh_greedy_reply):
    def once(*options: str) -> str:
        return replies_of(replica("chat", run_dir, "--once", SECOND, "--max-new-tokens", "16", *options))[0]

    hot = [once("--seed", str(seed), "--temperature", "2") for seed in (1, 2)]
    assert any(reply != fresh_greedy_reply for reply in hot)  # sampling at 2 leaves the greedy reply
    # a near-zero temperature is greedy (the tiny model's logits lie close together: 0.01 still samples among them)
    assert once("--seed", "1", "--temperature", "0.000001") == fresh_greedy_reply
    assert once("--seed", "1", "--temperature", "2", "--top-p", "0.000001") == fresh_greedy_reply  # only the top token


@pytest.mark.slow
def test_chat_interactive_ends_at_end_of_input(run_dir):
    result = replica("chat", run_dir, "--seed", "5", stdin="ciao\n\n")
    assert result.returncode == 0, result.stderr
    assert len(printed_replies(result.stdout)) == 1


# ---- merge ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("style", ["role_tokens", "plain"])
def test_chat_template_renders_the_training_prompt(tiny_model_dir, style):
    from transformers import AutoTokenizer

    from replica.model.chat_template import chat_template
    from replica.model.formatting import ChatFormatter
    from replica.model.tokens import RoleTokens, add_role_tokens

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    add_role_tokens(tokenizer, RoleTokens(), need_roles=style == "role_tokens")
    tokenizer.unk_token = None  # this tokenizer's unk is its EOS, which ChatFormatter takes for "not a token"
    formatter = ChatFormatter(tokenizer, style, RoleTokens(), max_length=256)
    tokenizer.chat_template = chat_template(formatter)
    context = [{"role": "them", "text": "ciao! 🍕"}, {"role": "me", "text": "sì dai"}, {"role": "them", "text": "a che ora?"}]
    messages = [{"role": "system", "content": "ignored"}] + [
        {"role": "user" if turn["role"] == "them" else "assistant", "content": turn["text"]} for turn in context
    ]
    rendered = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert tokenizer(rendered, add_special_tokens=False)["input_ids"] == formatter.prompt_ids(context)


@pytest.mark.slow
def test_merged_model_loads_without_peft_and_matches_adapter(run_dir, merged):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from replica.inference.loading import load_run

    peft_model, formatter, info = load_run(run_dir, quantized=False)
    model = AutoModelForCausalLM.from_pretrained(merged)
    assert not hasattr(model, "peft_config")
    assert not any("lora" in name for name, _ in model.named_parameters())
    assert model.config.vocab_size == peft_model.get_base_model().config.vocab_size

    prompt = torch.tensor([formatter.prompt_ids([{"role": "them", "text": "ciao, stasera pizza?"}])])
    with torch.no_grad():
        adapted = peft_model(input_ids=prompt).logits
        standalone = model(input_ids=prompt).logits
        with peft_model.disable_adapter():
            base = peft_model(input_ids=prompt).logits
    assert torch.allclose(standalone, adapted, atol=1e-4, rtol=1e-4)
    assert not torch.allclose(base, adapted, atol=1e-3)  # the adapter really changed the model

    tokenizer = AutoTokenizer.from_pretrained(merged)
    vocab = tokenizer.get_vocab()
    assert all(token in vocab for token in ("<|me|>", "<|them|>", "<|eot|>"))
    assert tokenizer.pad_token_id is not None and tokenizer.pad_token_id != tokenizer.eos_token_id
    assert formatter.end_of_turn_id in model.generation_config.eos_token_id
    assert tokenizer.eos_token_id in model.generation_config.eos_token_id


@pytest.mark.slow
def test_merged_generate_stops_at_end_of_turn_and_chat_template_matches_format(run_dir, merged):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from replica.inference.loading import load_run

    _, formatter, _ = load_run(run_dir, quantized=False)
    tokenizer = AutoTokenizer.from_pretrained(merged)
    model = AutoModelForCausalLM.from_pretrained(merged)
    context = [{"role": "them", "text": "ciao!"}, {"role": "me", "text": "hey"}, {"role": "them", "text": "come stai?"}]
    messages = [{"role": "user" if t["role"] == "them" else "assistant", "content": t["text"]} for t in context]
    rendered = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    ids = tokenizer(rendered, add_special_tokens=False)["input_ids"]
    assert ids == formatter.prompt_ids(context)

    out = model.generate(torch.tensor([ids]), max_new_tokens=40, do_sample=False)[0, len(ids):].tolist()
    stops = set(model.generation_config.eos_token_id)
    assert all(token not in stops for token in out[:-1])  # plain generate ends at the first stop id


@pytest.mark.slow
def test_merged_folder_metadata_keeps_format_and_no_training_config(merged):
    meta = json.loads((merged / "replica.json").read_text())
    assert meta["format"] == "role_tokens" and meta["role_tokens"]["eot"] == "<|eot|>"
    assert "config" not in meta  # the training config names the user and their exports
    assert meta["generation"]["max_new_tokens"] == 16  # the run's block (FAST_OVERRIDES)
    assert not any(p.name.startswith(".") for p in merged.parent.iterdir())  # no staging leftovers


@pytest.mark.slow
def test_merge_force_replaces_a_previous_merge(run_dir, tmp_path):
    out = tmp_path / "again"
    assert replica("merge", run_dir, "--out", out, "--dtype", "bfloat16").returncode == 0
    result = replica("merge", run_dir, "--out", out, "--force", "--dtype", "float16")
    assert result.returncode == 0, result.stderr
    assert json.loads((out / "config.json").read_text())["dtype"] == "float16"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again"]


# ---- bad input -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("command", [["chat", "--once", "ciao"], ["merge", "--out", "unused-out"]])
def test_missing_run_dir_is_one_line_error(tmp_path, command):
    result = replica(command[0], tmp_path / "no-such-run", *command[1:])
    assert_one_line_error(result, "replica: error: ", "no such run directory")
    assert not (ROOT / "unused-out").exists()


@pytest.mark.parametrize("command", [["chat", "--once", "ciao"], ["merge", "--out", "unused-out"]])
def test_incomplete_run_dir_is_one_line_error(tmp_path, command):
    (tmp_path / "adapter").mkdir()
    (tmp_path / "adapter" / "adapter_config.json").write_text("{}")
    result = replica(command[0], tmp_path, *command[1:])
    assert_one_line_error(result, "replica: error: ", "incomplete run", "adapter_model.safetensors")


@pytest.mark.slow
def test_merge_refuses_non_empty_out_without_force(run_dir, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    result = replica("merge", run_dir, "--out", out)
    assert_one_line_error(result, "replica: error: ", "--force")
    forced = replica("merge", run_dir, "--out", out, "--force")  # not a model folder: --force won't delete it
    assert_one_line_error(forced, "replica: error: ", "config.json")
    assert [p.name for p in out.iterdir()] == ["notes.txt"] and (out / "notes.txt").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]


# ---- damaged run folders: one line, exit 2, for every command that reads a run ---------------------------------
def _truncate_weights(adapter: Path) -> None:
    weights = adapter / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])


def _break_adapter_config(adapter: Path) -> None:
    (adapter / "adapter_config.json").write_text('{"peft_type": "LORA", "r": 8,', encoding="utf-8")


def _remove_tokenizer(adapter: Path) -> None:
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (adapter / name).unlink()


DAMAGES = {
    "truncated adapter": (_truncate_weights, "adapter_model.safetensors"),
    "bad adapter_config.json": (_break_adapter_config, "adapter_config.json"),
    "missing tokenizer files": (_remove_tokenizer, "tokenizer"),
}
COMMANDS = {
    "evaluate": ("evaluate.py: error:", lambda run, tmp: [sys.executable, str(ROOT / "evaluate.py"), f"run_dir={run}"]),
    "chat": ("replica: error:", lambda run, tmp: [sys.executable, "-m", "replica.cli", "chat", str(run), "--once", "ciao"]),
    "merge": ("replica: error:", lambda run, tmp: [sys.executable, "-m", "replica.cli", "merge", str(run), "--out", str(tmp / "merged")]),
}


@pytest.mark.slow
@pytest.mark.parametrize("damage", DAMAGES)
@pytest.mark.parametrize("command", COMMANDS)
def test_a_damaged_run_is_one_line_error(run_dir, tmp_path, damage, command):
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    harm, named_file = DAMAGES[damage]
    harm(copy / "adapter")
    prefix, argv = COMMANDS[command]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    result = subprocess.run(argv(copy, tmp_path), capture_output=True, text=True, cwd=tmp_path, env=env, timeout=CLI_TIMEOUT)
    assert_one_line_error(result, prefix, "damaged run", named_file, "ckpt_path=")
    assert not (tmp_path / "merged").exists()
