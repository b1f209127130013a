"""Evaluation of runs trained with relationship labels: metrics per label and label fidelity (issue 17)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from replica.atomic import read_jsonl
from replica.evaluation.data import replies_by_label
from replica.evaluation.fidelity import plan_fidelity, score_fidelity
from tests.conftest import LABELLED_DATA
from tests.helpers import assert_one_line_error, tiny_cfg

ROOT = Path(__file__).resolve().parents[1]
FAMILY_STYLE = ["Thanks Mum, I'll be there on Sunday. Love you x", "Yes, that would be lovely. See you soon x",
                "Busy but good, thank you. Speak tomorrow x"]
FRIEND_STYLE = ["lol bet 💀", "omg ok see u", "ngl im dead 😭"]
FAST_EVAL = ["decoding.samples=1", "decoding.greedy=false", "decoding.max_new_tokens=12", "intervals.resamples=200",
             "probes.prompts=[hi]"]


def run_evaluate(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "evaluate.py", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=900)


@pytest.fixture(scope="module")
def english_dataset(tmp_path_factory) -> Path:
    """The English sample prepared with relationships (family: Mum; friend: Jake, Priya), no training."""
    from replica.prepare.pipeline import prepare_dataset

    tmp = tmp_path_factory.mktemp("labels-data")
    return prepare_dataset(tiny_cfg(tmp, LABELLED_DATA).data, log=lambda *_: None).dir


def test_fidelity_is_one_for_the_right_styles_and_zero_for_swapped_ones(english_dataset):
    train = replies_by_label(read_jsonl(english_dataset / "train.jsonl"))
    examples = read_jsonl(english_dataset / "test.jsonl")
    plan = plan_fidelity(train, examples, min_train=20)
    assert plan is not None and set(plan.labels) == {"family", "friend"} and plan.pairs == [("friend", "family")]
    assert len(plan.contexts) == len(examples)  # every test example is family or friend
    right = {"family": [FAMILY_STYLE] * len(plan.contexts), "friend": [FRIEND_STYLE] * len(plan.contexts)}
    swapped = {"family": right["friend"], "friend": right["family"]}

    scored = score_fidelity(plan, train, examples, right, resamples=200, seed=0)
    pair = scored["pairs"]["friend vs family"]
    assert pair["fidelity"] == 1.0 and pair["fidelity_ci"] == [1.0, 1.0]
    assert pair["label_kept"] == {"friend": 1.0, "family": 1.0}
    assert pair["own_context"] == 1.0
    assert pair["contexts"] == len(examples)
    assert pair["train_replies"] == {"friend": len(train["friend"]), "family": len(train["family"])}
    assert 0.8 < pair["ceiling"] <= 1.0  # Sam's real replies to Mum and to friends differ clearly
    assert pair["ceiling_ci"][0] <= pair["ceiling"] <= pair["ceiling_ci"][1]
    assert scored["mean"]["fidelity"] == 1.0 and scored["mean"]["ceiling"] == pair["ceiling"]

    flipped = score_fidelity(plan, train, examples, swapped, resamples=200, seed=0)
    assert flipped["pairs"]["friend vs family"]["fidelity"] == 0.0
    assert flipped["mean"]["own_context"] == 0.0
    assert flipped["mean"]["ceiling"] == pair["ceiling"]  # the ceiling reads real replies only


def test_one_style_for_every_label_scores_one_half(english_dataset):
    train = replies_by_label(read_jsonl(english_dataset / "train.jsonl"))
    examples = read_jsonl(english_dataset / "test.jsonl")
    plan = plan_fidelity(train, examples, min_train=20)
    same = {"family": [FRIEND_STYLE] * len(plan.contexts), "friend": [FRIEND_STYLE] * len(plan.contexts)}
    pair = score_fidelity(plan, train, examples, same, resamples=200, seed=0)["pairs"]["friend vs family"]
    assert pair["fidelity"] == 0.5 and pair["label_kept"] == {"friend": 1.0, "family": 0.0}


def test_labels_with_too_few_training_replies_are_not_compared(english_dataset):
    train = replies_by_label(read_jsonl(english_dataset / "train.jsonl"))
    examples = read_jsonl(english_dataset / "test.jsonl")
    assert plan_fidelity(train, examples, min_train=len(train["family"]) + 1) is None
    assert plan_fidelity({**train, "work": ["Noted."] * 30}, examples, min_train=20).labels == ["friend", "family"]


def test_bad_relationship_settings_are_one_line_errors(tmp_path):
    done = run_evaluate(f"run_dir={tmp_path}", "relationships.min_examples=1", "relationships.fidelity=maybe")
    assert_one_line_error(done, "evaluate.py: error:", "relationships.min_examples=1 must be an integer >= 2",
                          "relationships.fidelity='maybe' must be true or false")
    done = run_evaluate(f"run_dir={tmp_path}", "relationships.min_train_replies=0")
    assert_one_line_error(done, "evaluate.py: error:", "relationships.min_train_replies=0 must be an integer >= 2")


def test_bad_eval_settings_are_one_line_errors_before_the_run_is_read(tmp_path):
    done = run_evaluate(f"run_dir={tmp_path}", "eval.split=dev", "eval.max_examples=0", "eval.device=gpu0")
    assert_one_line_error(done, "evaluate.py: error:", "eval.split='dev' must be one of train|val|test",
                          "eval.max_examples=0 must be an integer >= 1", "eval.device='gpu0' must be auto, cpu")


# ---- the real CLI on the labelled tiny run --------------------------------------------------------------------
@pytest.fixture(scope="module")
def labelled_eval(labelled_run, tmp_path_factory) -> tuple[Path, dict, subprocess.CompletedProcess]:
    """evaluate.py on a copy of the labelled run, the whole test split, small decoding settings."""
    run = tmp_path_factory.mktemp("labelled-eval") / "run"
    shutil.copytree(labelled_run, run)
    done = run_evaluate(f"run_dir={run}", "eval.max_examples=null", "relationships.min_examples=50", *FAST_EVAL)
    assert done.returncode == 0, done.stderr[-3000:]
    return run, json.loads((run / "eval" / "metrics.json").read_text()), done


@pytest.mark.slow
def test_per_label_metrics_match_the_test_split(labelled_eval):
    run, metrics, done = labelled_eval
    dataset = Path(json.loads((run / "dataset.json").read_text())["dir"])
    counts = Counter(row["relationship"] for row in read_jsonl(dataset / "test.jsonl"))
    per_label = metrics["per_relationship"]
    assert {label: entry["n_examples"] for label, entry in per_label.items()} == dict(counts)
    assert list(per_label) == [label for label, _ in counts.most_common()]
    for label, entry in per_label.items():
        for side in ("baseline", "finetuned"):
            for key in ("style_similarity", "discriminator_auc", "clean_stop_rate"):
                assert 0 <= entry[side][key] <= 1, (label, side, key)
            assert entry[side]["perplexity"] > 1
        if counts[label] >= 50:  # relationships.min_examples=50: intervals and paired differences
            low, high = entry["finetuned"]["ci"]["style_similarity"]
            assert low <= high and "note" not in entry and "style_similarity" in entry["difference"]
        else:
            assert "ci" not in entry["finetuned"] and "difference" not in entry and "50" in entry["note"]
    assert {counts[label] >= 50 for label in counts} == {True, False}  # both branches were exercised
    # the per-label clean-stop rates average back to the overall one (one sampled reply per example)
    overall = sum(per_label[label]["finetuned"]["clean_stop_rate"] * counts[label] for label in counts) / counts.total()
    assert overall == pytest.approx(metrics["finetuned"]["clean_stop_rate"])
    report = (run / "eval" / "report.md").read_text()
    assert "## Per relationship" in report and "## Label fidelity" in report
    assert "label_fidelity" in done.stdout
    # the report opens with the weakest label: the one whose replies read as it least often
    weakest = metrics["where_to_teach"]["weakest"]
    kept = {label: [pair["label_kept"][label] for pair in metrics["label_fidelity"]["pairs"].values()
                    if label in pair["label_kept"]] for label in counts}
    assert weakest == min(kept, key=lambda label: (sum(kept[label]) / len(kept[label]), label))
    assert report.index("## Where to teach") < report.index("| metric |")
    assert f"weakest relationship: {weakest}" in done.stdout


@pytest.mark.slow
def test_label_fidelity_of_the_labelled_run(labelled_eval):
    _, metrics, _ = labelled_eval
    fidelity = metrics["label_fidelity"]
    assert fidelity["in_prompt"] is True and fidelity["labels"] == ["friend", "family"]
    pair = fidelity["pairs"]["friend vs family"]
    for name in ("fidelity", "own_context", "ceiling"):
        assert 0 <= pair[name] <= 1
        low, high = pair[f"{name}_ci"]
        assert low <= pair[name] <= high
    assert pair["ceiling"] > 0.8  # the classifier tells Sam's real replies to Mum from those to friends
    assert fidelity["mean"]["fidelity"] == pair["fidelity"]  # one pair: the mean is that pair


@pytest.mark.slow
def test_an_old_run_without_labels_evaluates_as_before(labelled_run, tmp_path):
    """A run whose replica.json predates labels (no `relationships`, no `relationship_in_prompt`)."""
    run = tmp_path / "old"
    shutil.copytree(labelled_run, run, ignore=shutil.ignore_patterns("eval"))
    meta_path = run / "adapter" / "replica.json"
    meta = json.loads(meta_path.read_text())
    del meta["relationships"], meta["relationship_in_prompt"]
    meta_path.write_text(json.dumps(meta))
    done = run_evaluate(f"run_dir={run}", "eval.max_examples=8", *FAST_EVAL)
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((run / "eval" / "metrics.json").read_text())
    assert "per_relationship" not in metrics and "label_fidelity" not in metrics
    assert 0 <= metrics["finetuned"]["style_similarity"] <= 1
    report = (run / "eval" / "report.md").read_text()
    assert "Per relationship" not in report and "Label fidelity" not in report
    assert "label_fidelity" not in done.stdout


@pytest.mark.slow
def test_a_run_without_the_label_in_its_prompts_scores_exactly_one_half(labelled_run, tmp_path):
    """The ablation's formatter (labels known, none in the prompt) writes the same reply under every label."""
    from replica.evaluation.fidelity import label_fidelity
    from replica.inference.jobs import Sampling
    from replica.inference.loading import load_run
    from replica.inference.transformers_engine import TransformersEngine

    dataset = Path(json.loads((labelled_run / "dataset.json").read_text())["dir"])
    train = replies_by_label(read_jsonl(dataset / "train.jsonl"))
    rows = read_jsonl(dataset / "test.jsonl")
    examples = [row for row in rows if row["relationship"] == "family"][:12] + [
        row for row in rows if row["relationship"] == "friend"][:12]
    run = tmp_path / "ablation"  # an ablation run's replica.json: the labels known, none in the prompt
    shutil.copytree(labelled_run, run, ignore=shutil.ignore_patterns("eval"))
    meta_path = run / "adapter" / "replica.json"
    meta_path.write_text(json.dumps({**json.loads(meta_path.read_text()), "relationship_in_prompt": False}))
    model, formatter, _ = load_run(run, device="cpu")
    assert formatter.labels == ["friend", "family"]
    sampling = Sampling(max_new_tokens=12, do_sample=True, seed=3)
    fidelity = label_fidelity(TransformersEngine(model, formatter), train, examples, sampling, 1, 8, 20, 200, 0)
    assert fidelity["in_prompt"] is False
    assert fidelity["pairs"]["friend vs family"]["fidelity"] == 0.5
    assert fidelity["mean"]["fidelity_ci"] == [0.5, 0.5]


def test_label_fidelity_benchmark_refuses_a_bad_override_in_one_line(tmp_path):
    script = ROOT / "benchmarks" / "label_fidelity.py"
    done = subprocess.run([sys.executable, str(script), "--model", "no-such-preset", "--work", str(tmp_path)],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert_one_line_error(done, "label_fidelity.py: error:", "no-such-preset", "smollm2-135m")
