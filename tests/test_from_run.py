"""`python train.py from_run=RUN`: settings, data, weights and feedback carried from a run into a continued one."""

from __future__ import annotations

import csv
import json
import math
import re
import stat
from pathlib import Path

import pytest
import torch
import yaml

from replica.atomic import read_jsonl
from replica.errors import ReplicaInputError
from replica.prepare.split import example_key, split_examples
from replica.training.lineage import with_parent_overrides
from replica.training.preference import dpo_loss
from tests.helpers import FAST_OVERRIDES, assert_one_line_error, paths, run_train

ENGLISH = Path(__file__).resolve().parents[1] / "examples" / "english"
LABELS = ["data.me=['Sam Rivera']", "data.relationships={Mum: family, 'Jake Miller': friend, Priya Shah: friend}"]


# ---- splits a continued run keeps -----------------------------------------------------------------------------
def example(session: str, time: str, target: str) -> dict:
    return {"session": session, "time": time, "target": target, "context": []}


def test_examples_another_dataset_held_out_keep_their_split_and_new_sessions_are_cut_by_fractions():
    old_test = example("chat_1#1", "2024-01-01T10:00:00", "see you at <PHONE_1>")
    old_train = example("chat_1#2", "2024-01-02T10:00:00", "ok")
    # the same replies in a new dataset: other session ids, another number for the masked phone
    kept = {example_key(old_test): "test", example_key(old_train): "train"}
    renamed_test = example("chat_3#7", "2024-01-01T10:00:00", "see you at <PHONE_4>")
    renamed_train = example("chat_3#8", "2024-01-02T10:00:00", "ok")
    # a session holding an old test reply and an old train reply must not be trained on
    mixed = [example("chat_3#9", "2024-01-03T10:00:00", "a"), example("chat_3#9", "2024-01-04T10:00:00", "b")]
    kept |= {example_key(mixed[0]): "train", example_key(mixed[1]): "test"}
    new = [example(f"chat_9#{n}", f"2025-01-{n + 1:02d}T10:00:00", f"new {n}") for n in range(20)]
    splits = split_examples([renamed_test, renamed_train, *mixed, *new], [0.5, 0.25, 0.25], seed=1, kept=kept)
    assert renamed_test in splits["test"] and renamed_train in splits["train"]
    assert all(row in splits["test"] for row in mixed)
    new_sizes = {name: sum(row in rows for row in new) for name, rows in splits.items()}
    assert new_sizes == {"train": 10, "val": 5, "test": 5}


def test_example_key_tells_apart_replies_that_differ_beyond_their_masked_numbers():
    assert example_key(example("a", "t", "<PHONE_1> ok")) == example_key(example("b", "t", "<PHONE_2> ok"))
    assert example_key(example("a", "t", "<PHONE_1> ok")) != example_key(example("a", "t", "<EMAIL_1> ok"))
    assert example_key(example("a", "t", "ok")) != example_key(example("a", "t2", "ok"))


# ---- the parent's settings come first -------------------------------------------------------------------------
def test_the_parents_recorded_overrides_come_first_and_its_own_from_run_and_resume_are_not_inherited(tmp_path):
    (tmp_path / ".hydra").mkdir()
    recorded = ["lora.r=8", "from_run=/old/grandparent", "ckpt_path=auto", "hydra.run.dir=/x", "data=english",
                "data.keep_splits_of=/old/dataset"]
    (tmp_path / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(recorded))
    argv = [f"from_run={tmp_path}", "lora.dropout=0.1"]
    assert with_parent_overrides(argv) == ["lora.r=8", "data=english", *argv]
    assert with_parent_overrides(["lora.r=4"]) == ["lora.r=4"]


def test_a_from_run_that_is_not_a_run_folder_is_one_clear_error(tmp_path):
    with pytest.raises(ReplicaInputError, match="overrides.yaml"):
        with_parent_overrides([f"from_run={tmp_path / 'nothing'}"])


def test_feedback_is_repeated_to_make_up_its_share_of_the_train_rows():
    from replica.training.lineage import feedback_examples

    rows = [{"target": f"reply {n}"} for n in range(40)]
    # 40 corrections among 1,045 chat replies, a quarter of the rows: 9 copies each (360 of 1,405 rows, 25.6%)
    learned = feedback_examples(rows, weight=3.0, share=0.25, chat_examples=1045)
    assert len(learned) == 360 and {row["weight"] for row in learned} == {3.0}
    assert len(feedback_examples(rows, weight=3.0, share=0.0, chat_examples=1045)) == 40
    assert feedback_examples(rows, weight=0.0, share=0.25, chat_examples=1045) == []


# ---- DPO's loss, computed by hand --------------------------------------------------------------------------------
def test_dpo_loss_and_margin_match_the_formula():
    policy = torch.tensor([[-1.0, -3.0], [-2.0, -2.0]])
    reference = torch.tensor([[-2.0, -2.0], [-2.0, -2.0]])
    loss, margin = dpo_loss(policy, reference, beta=0.5)
    # pair 1: margin (-1 + 2) - (-3 + 2) = 2, beta x 2 = 1; pair 2: 0
    expected = (math.log(1 + math.exp(-1.0)) + math.log(2.0)) / 2
    assert loss.item() == pytest.approx(expected, abs=1e-6)
    assert margin.item() == pytest.approx(0.5, abs=1e-6)


# ---- a real continued run (tiny model, 4-bit + LoRA, the real CLI) ----------------------------------------------
def train_args(tmp_path: Path, run: str, *extra: str) -> list[str]:
    return [*FAST_OVERRIDES, *paths(tmp_path), f"hydra.run.dir={tmp_path / run}", *extra]


def old_export(tmp_path: Path) -> Path:
    """The English sample as exported earlier: the first 60% of every chat."""
    folder = tmp_path / "a_month_ago"
    folder.mkdir()
    for chat in ENGLISH.glob("*.txt"):
        lines = chat.read_text(encoding="utf-8").splitlines(keepends=True)
        (folder / chat.name).write_text("".join(lines[: len(lines) * 6 // 10]), encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def parent(tmp_path_factory) -> Path:
    """A tiny real run on the earlier export, with two corrections and one reply marked good in its store."""
    from replica.feedback.store import FeedbackStore
    from replica.model.run_dir import inspect_run

    tmp = tmp_path_factory.mktemp("from_run")
    done = run_train(train_args(tmp, "parent", f"data.exports=[{old_export(tmp)}]", *LABELS), tmp)
    assert done.returncode == 0, done.stderr[-3000:]
    info = inspect_run(tmp / "parent")
    store = FeedbackStore.of_run(info.run_dir, info.config)
    context = [{"role": "them", "text": "Are you coming on Sunday? Call me on +44 7700 900123"}]
    store.add(context, "ye lol", correction="Yes Mum, I'll be there by noon.", relationship="family")
    store.add(context, "k", correction="Of course, see you Sunday!", relationship="family")
    store.add([{"role": "them", "text": "pub?"}], "yeah in 10", relationship="friend")
    return tmp / "parent"


@pytest.fixture(scope="module")
def child(parent) -> Path:
    tmp = parent.parent
    args = train_args(tmp, "child", f"from_run={parent}", f"data.exports=[{ENGLISH}]", "feedback.preference=true",
                      "feedback.weight=2", "trainer.max_steps=12", "trainer.log_every_n_steps=1")
    done = run_train(args, tmp)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "continued from" in done.stdout
    return tmp / "child"


def split_keys(run: Path, split: str) -> set[str]:
    record = json.loads((run / "dataset.json").read_text(encoding="utf-8"))
    return {example_key(row) for row in read_jsonl(Path(record["dir"]) / f"{split}.jsonl")}


@pytest.mark.slow
def test_a_continued_run_starts_from_its_parents_adapter_on_the_union_keeping_held_out_examples_held_out(parent, child):
    parent_summary = json.loads((parent / "summary.json").read_text())
    summary = json.loads((child / "summary.json").read_text())
    # the parent's best adapter on the child's val split: the parent's val examples are all there, with new ones
    assert split_keys(parent, "val") <= split_keys(child, "val")
    assert summary["initial_val_loss"] < json.loads((parent / "summary.json").read_text())["initial_val_loss"] - 0.3
    # every example the parent held out (val, test) stays out of the child's train split; its test stays test
    assert split_keys(parent, "test") <= split_keys(child, "test")
    assert not (split_keys(parent, "test") | split_keys(parent, "val")) & split_keys(child, "train")
    assert len(split_keys(child, "train")) > len(split_keys(parent, "train"))  # the new export's messages
    assert summary["from_run"] == str(parent.resolve()) and parent_summary["from_run"] is None
    # val loss per relationship label: the overall one is their token-weighted mean, so it lies between them
    per_label = {label: row["final_val_loss"] for label, row in summary["relationships"].items()}
    assert set(per_label) == {"family", "friend"} and summary["weakest_relationship"] in per_label
    assert min(per_label.values()) <= summary["final_val_loss"] <= max(per_label.values())
    recorded = json.loads((child / "adapter" / "replica.json").read_text())["config"]
    assert recorded["from_run"] == str(parent.resolve())


@pytest.mark.slow
def test_a_continued_run_learns_its_parents_feedback_masked_private_and_with_dpo(parent, child):
    summary = json.loads((child / "summary.json").read_text())
    learned = child / "feedback" / "learned.jsonl"
    rows = read_jsonl(learned)
    assert summary["feedback_examples"] == 3  # two corrections, one reply marked good
    # repeated to make up a quarter of the train rows (feedback.share=0.25): 3 x r >= (chat rows + 3 x r) / 4
    record = json.loads((child / "dataset.json").read_text(encoding="utf-8"))
    chat_rows = len(read_jsonl(Path(record["dir"]) / "train.jsonl"))
    assert summary["feedback_rows"] == 3 * math.ceil(chat_rows / 9)
    targets = sorted(row["target"] for row in rows)
    assert targets[0] == "Of course, see you Sunday!" and targets[2] == "yeah in 10"
    assert re.fullmatch(r"Yes <NAME_\d+>, I'll be there by noon\.", targets[1])  # Mum is a contact of the exports
    assert sum("rejected" in row for row in rows) == 2
    assert "7700" not in learned.read_text(encoding="utf-8")  # the phone number in the context was masked
    assert stat.S_IMODE(learned.stat().st_mode) == 0o600
    assert stat.S_IMODE(learned.parent.stat().st_mode) == 0o700
    metrics = next(child.rglob("metrics.csv"))
    with open(metrics, encoding="utf-8") as handle:
        dpo = [float(row["train/dpo_loss"]) for row in csv.DictReader(handle) if row.get("train/dpo_loss")]
    assert dpo and all(math.isfinite(value) for value in dpo)
    assert dpo[0] == pytest.approx(math.log(2), abs=0.05)  # the first step: policy == reference, margin 0


@pytest.mark.slow
def test_a_continued_run_that_changes_the_adapters_shape_is_one_line(parent, tmp_path):
    done = run_train(train_args(tmp_path, "bad", f"from_run={parent}", "lora.r=4"), tmp_path)
    assert_one_line_error(done, "train.py: error:", "from_run", "lora.r=4")
    assert not (tmp_path / "bad").exists()


@pytest.mark.slow
def test_evaluate_scores_a_continued_run_against_its_parent_on_the_same_examples(parent, child):
    from tests.test_label_evaluation import FAST_EVAL, run_evaluate

    done = run_evaluate(f"run_dir={child}", "eval.max_examples=40", "relationships.fidelity=false", *FAST_EVAL)
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((child / "eval" / "metrics.json").read_text())
    versus = metrics["versus_parent"]
    assert versus["parent"] == str(parent.resolve())
    # this run is the same side of both comparisons: the same examples, seeds and replies
    assert versus["finetuned"]["perplexity"] == pytest.approx(metrics["finetuned"]["perplexity"])
    assert versus["baseline"]["perplexity"] != pytest.approx(metrics["finetuned"]["perplexity"])
    assert "perplexity" in versus["difference"]
    report = (child / "eval" / "report.md").read_text()
    assert "## Against the parent run" in report and "| metric | parent [95% CI] | this run [95% CI]" in report
