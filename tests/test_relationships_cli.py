"""Relationship labels through the real CLIs: `replica prepare` with data.relationships, `replica chat --to`, and
the export of a labelled run (Ollama SYSTEM line, the GGUF's chat template)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ENGLISH_SAMPLE
from tests.helpers import assert_one_line_error, train_tiny

ROOT = Path(__file__).resolve().parents[1]
ME = "data.me=['Sam Rivera']"
EXPORTS = f"data.exports=[{ENGLISH_SAMPLE}]"
NAMES = ("Mum", "Jake", "Miller", "Priya", "Shah")


def replica(*args: str, stdin: str | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "replica.cli", *map(str, args)], input=stdin, capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=600)


def prepare(tmp_path: Path, relationships: str) -> subprocess.CompletedProcess:
    return replica("prepare", EXPORTS, ME, f"data.relationships={relationships}",
                   f"paths.data_dir={tmp_path / 'data'}", cwd=tmp_path)


def dataset_rows(tmp_path: Path) -> list[dict]:
    (dataset,) = (tmp_path / "data" / "datasets").iterdir()
    return [json.loads(line) for split in ("train", "val", "test")
            for line in (dataset / f"{split}.jsonl").read_text("utf-8").splitlines()]


def test_prepare_labels_every_example_and_counts_them_without_a_name(tmp_path):
    done = prepare(tmp_path, "{Mum: family, 'Jake Miller': friend}")  # Priya Shah unlisted: other
    assert done.returncode == 0, done.stderr
    rows = dataset_rows(tmp_path)
    # the sample's three chats, counted from its files: one example per turn of Sam's that follows another turn
    by_label = {label: sum(row["relationship"] == label for row in rows) for label in ("family", "friend", "other")}
    assert all(by_label.values()) and sum(by_label.values()) == len(rows)
    assert not any(row["group"] for row in rows)
    (dataset,) = (tmp_path / "data" / "datasets").iterdir()
    stats = json.loads((dataset / "stats.json").read_text("utf-8"))
    assert stats["examples_per_relationship"] == by_label
    assert f"family {by_label['family']}" in done.stdout
    for path in dataset.iterdir():  # the manifest records the config: the names in it are hashed
        text = path.read_text("utf-8")
        assert not [name for name in NAMES if name in text], path.name


def test_quoted_and_non_ascii_names_on_the_command_line(tmp_path):
    done = prepare(tmp_path, "{'MUM': family, \"jäke  miller\": friend}")  # case, accents and spaces ignored
    assert done.returncode == 0, done.stderr
    labels = {row["chat"]: row["relationship"] for row in dataset_rows(tmp_path)}
    assert sorted(labels.values()) == ["family", "friend", "other"]


def test_an_unknown_name_lists_the_senders_and_chats(tmp_path):
    done = prepare(tmp_path, "{Mum: family, Jak: friend}")
    assert_one_line_error(done, "replica: error:", "data.relationships", "1 of its names", "Jake Miller",
                          "Priya Shah")
    assert not (tmp_path / "data" / "datasets").exists() or not any((tmp_path / "data" / "datasets").iterdir())


@pytest.mark.parametrize("relationships, named", [
    ("{Mum: 'Priya Shah'}", "equals a sender's or a chat's name"),
    ("{Mum: 'fa\\nmily'}", "1-24 letters"),
    ("[Mum]", "must map names to labels"),
])
def test_bad_labels_are_one_line(tmp_path, relationships, named):
    assert_one_line_error(prepare(tmp_path, relationships), "replica: error:", named)


def test_a_command_line_mapping_replaces_the_one_a_data_config_sets():
    from replica.config import compose
    from replica.privacy import name_key

    cfg = compose("train", ["data=english", "data.relationships={Mum: parent}"], output_dir="out")
    assert dict(cfg.data.relationships) == {name_key("Mum"): "parent"}  # not merged with english.yaml's three


# ---- a trained labelled run ------------------------------------------------------------------------------------
def once(run_dir: Path, *options: str) -> subprocess.CompletedProcess:
    return replica("chat", run_dir, "--once", "Hello love, are you coming for lunch on sunday?", "--max-new-tokens",
                   "16", *options)


def three_replies(run_dir: Path, switch: str = "") -> list[str]:
    """One chat session answering the same message three times from an empty context (seeds 0, 1, 2)."""
    message = "Hello love, are you coming for lunch on sunday?"
    script = switch + "\n/reset\n".join([message] * 3) + "\n"
    done = replica("chat", run_dir, "--seed", "0", "--max-new-tokens", "16", stdin=script)
    assert done.returncode == 0, done.stderr
    return done.stdout.split("replica> ")


@pytest.mark.slow
def test_chat_to_a_label_changes_the_reply_and_an_unknown_label_lists_the_valid_ones(labelled_run):
    family, friend = three_replies(labelled_run, "/to family\n"), three_replies(labelled_run, "/to friend\n")
    assert family != friend  # same seeds, same message: only the label differs
    assert three_replies(labelled_run) == friend  # no label named: friend, the sample's most common
    assert_one_line_error(once(labelled_run, "--to", "boss"), "replica: error:",
                          "unknown relationship label: this run knows friend, family")
    flag = once(labelled_run, "--to", "family", "--seed", "0")  # --to as a flag: the session's first family reply
    assert flag.returncode == 0 and flag.stdout.splitlines()[0] == family[1].splitlines()[0], flag.stderr


@pytest.mark.slow
def test_chat_switches_label_inside_a_session_and_prints_bursts_one_message_per_line(labelled_run):
    script = "/to family\nHello love, how was your week?\n/to nobody\n/to friend\nur coming tonight?\n/quit\n"
    done = replica("chat", labelled_run, "--seed", "4", stdin=script)
    assert done.returncode == 0, done.stderr
    assert "talking to you as: friend" in done.stderr  # the banner: the default label and the run's labels
    assert "(talking to you as: family)" in done.stderr and "(talking to you as: friend)" in done.stderr
    assert "unknown relationship label: this run knows friend, family" in done.stderr
    assert "nobody" not in done.stderr  # the value typed may be a name: never echoed
    lines = done.stdout.splitlines()
    assert sum(line.startswith("replica> ") for line in lines) == 2
    assert all(line.startswith(("replica> ", " " * len("replica> "))) and line.strip() for line in lines)


@pytest.mark.slow
def test_the_ablation_trains_on_the_same_labels_without_the_line(labelled_run, tmp_path):
    from tests.conftest import LABELLED_DATA

    _, ablation = train_tiny(tmp_path, [*LABELLED_DATA, "data.relationship_in_prompt=false", "trainer.max_steps=2",
                                        "trainer.val_check_interval=2", "validate_before_training=false"])
    preview = [json.loads(line) for line in (ablation / "data_preview.jsonl").read_text("utf-8").splitlines()]
    labelled = [json.loads(line) for line in (labelled_run / "data_preview.jsonl").read_text("utf-8").splitlines()]
    assert all(row["prompt"].startswith("to: ") for row in labelled)
    assert [row["prompt"].split("<|eot|>", 1)[1] for row in labelled] == [row["prompt"] for row in preview]
    meta = json.loads((ablation / "adapter" / "replica.json").read_text("utf-8"))
    assert meta["relationship_in_prompt"] is False and meta["relationships"] == ["friend", "family"]
    assert_one_line_error(once(ablation, "--to", "family"), "replica: error:", "without relationship labels")


@pytest.mark.slow
def test_an_unlabelled_run_refuses_a_label_and_chats_without_one(tmp_path):
    _, run_dir = train_tiny(tmp_path, ["trainer.max_steps=4", "trainer.val_check_interval=4"])
    assert_one_line_error(once(run_dir, "--to", "family"), "replica: error:", "without relationship labels")
    done = once(run_dir, "--seed", "1")
    assert done.returncode == 0 and done.stdout.strip(), done.stderr
    meta = json.loads((run_dir / "adapter" / "replica.json").read_text("utf-8"))
    assert meta["relationship_in_prompt"] is False and "talking to you as" not in done.stderr


@pytest.mark.slow
def test_export_of_a_labelled_run_carries_the_relationship_line(labelled_run, tmp_path):
    from jinja2 import Template

    from replica.inference.loading import load_run

    out = tmp_path / "export"
    done = replica("export", labelled_run, "--gguf", "--quant", "f32", "--ollama", "--out", out)
    assert done.returncode == 0, done.stderr
    modelfile = (out / "Modelfile").read_text("utf-8")
    assert 'SYSTEM "to: friend"' in modelfile and "{{ .System }}" in modelfile
    assert "friend, family" in modelfile

    import gguf

    reader = gguf.GGUFReader(next(out.glob("*.gguf")))
    field = reader.fields["tokenizer.chat_template"]
    template = bytes(field.parts[field.data[0]]).decode("utf-8")
    _, formatter, _ = load_run(labelled_run)
    tokenizer = formatter.tokenizer
    context = [{"role": "them", "text": "Hello love"}, {"role": "me", "text": "Hi Mum x"}, {"role": "them", "text": "ok"}]
    for label in ("family", "friend"):
        messages = [{"role": "system", "content": f"to: {label}"},
                    *({"role": "user" if t["role"] == "them" else "assistant", "content": t["text"]} for t in context)]
        rendered = Template(template).render(messages=messages, add_generation_prompt=True, bos_token=tokenizer.bos_token)
        expected = tokenizer.decode(formatter.prompt_ids(context, label))  # the prompt the run was trained on
        assert rendered == expected
