"""Exports -> cleaned, language-filtered, PII-masked, windowed, split dataset, published content-addressed."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from omegaconf import DictConfig

from replica.atomic import read_jsonl
from replica.errors import ReplicaInputError
from replica.ingest import LoadResult, load_exports
from replica.ingest.message import Message
from replica.prepare.clean import clean_messages
from replica.prepare.config import input_limits, parse_data_config
from replica.prepare.dedup import drop_overlaps
from replica.prepare.examples import build_examples
from replica.prepare.identity import resolve_me, sender_counts
from replica.prepare.language import chat_key, detect_chat_languages, keep_languages
from replica.prepare.pii import PiiMasker, PrivateValues, pii_values, regions_seen
from replica.prepare.placeholders import mark_placeholders
from replica.prepare.relationships import chat_relations, contact_pseudonyms
from replica.prepare.shown_paths import display_path
from replica.prepare.split import example_key, split_examples
from replica.prepare.stats import compute_stats, format_stats
from replica.prepare.store import (
    PreparedDataset,
    dataset_folder,
    dataset_identity,
    open_dataset,
    publish,
    published,
    read_run_record,
    read_stats,
)
from replica.prepare.turns import build_sessions, chat_labels
from replica.privacy import mask_title
from replica.settings import SPLITS, DataSection


@dataclass(slots=True)
class Dataset:
    splits: dict[str, list[dict]]  # train/val/test examples
    stats: dict


def build_dataset(loaded: LoadResult, cfg: DataSection) -> Dataset:
    """The dataset in memory: find the user, clean, keep wanted languages, mask PII, build turns, examples, splits."""
    messages, overlaps = drop_overlaps(loaded)
    messages, placeholders = mark_placeholders(messages)
    me_senders = resolve_me(messages, cfg.me, loaded.owners)
    relations = chat_relations(messages, me_senders, cfg.relationships)
    cleaned, dropped = clean_messages(messages, media=cfg.media)
    chat_languages = detect_chat_languages(cleaned, sample=cfg.language_sample, seed=cfg.seed)
    kept = keep_languages(cleaned, chat_languages, cfg.languages)
    if len(kept) < len(cleaned):
        dropped["language"] = len(cleaned) - len(kept)
    contacts = _contacts(messages, me_senders)
    masker = PiiMasker(
        contacts,
        own_names=[*cfg.me, *me_senders],
        region=cfg.phone_region,
        regions=regions_seen([*(message.text for message in kept), *contacts]),
        options=cfg.mask,
        texts=[(message.text, chat_languages.get(chat_key(message))) for message in kept],  # numbered in data order
    )
    masked = [
        replace(message, text=masker.mask(message.text, chat_languages.get(chat_key(message)))) for message in kept
    ]
    title_to_label = _title_masking(messages, me_senders, masker)
    sessions = build_sessions(
        masked,
        me_senders,
        merge_gap_minutes=cfg.merge_gap,
        session_gap_hours=cfg.session_gap,
        labels=chat_labels({chat_key(message) for message in masked}, rename=title_to_label),
        languages=chat_languages,
        relations=relations,
    )
    examples = build_examples(sessions, context_min=cfg.context_min, context_max=cfg.context_max, seed=cfg.seed,
                              speakers=contact_pseudonyms(messages, me_senders))
    if not examples:
        kept_languages = sorted(set(chat_languages.values()))
        raise ReplicaInputError(
            f"no training examples: none of your {sum(message.sender in me_senders for message in kept)} kept messages "
            f"answers anyone (chat languages found: {kept_languages}, data.languages={cfg.languages}); "
            "check data.me and data.languages"
        )
    splits = split_examples(examples, cfg.split, cfg.seed, kept_splits(cfg.keep_splits_of))
    stats = compute_stats(
        loaded=len(loaded.messages),
        files=len(loaded.files),
        skipped_files=len(loaded.skipped),
        dropped=dropped,
        kept=kept,
        me_senders=me_senders,
        chat_languages=chat_languages,
        sessions=sessions,
        splits=splits,
        overlaps=overlaps,
        placeholders=placeholders,
    )
    return Dataset(splits, stats)


def prepare_dataset(
    data_cfg: Mapping | DictConfig,
    *,
    log: Callable[[str], None] = print,
    expect_files: Mapping[str, str] | None = None,
) -> PreparedDataset:
    """The dataset of `data.exports` + the data config, in `<data.datasets_dir>/<key>`: reused when already
    published, else built and published as one set. `replica prepare`, train.py and evaluate.py all come here."""
    cfg = parse_data_config(data_cfg)
    identity = dataset_identity(cfg)
    found = open_dataset(dataset_folder(cfg, identity), identity.key)
    if found is not None:
        log(format_stats(read_stats(found)))
        log(f"dataset up to date in {found.dir}")
        return found
    dataset = build_dataset(_load(cfg, log), cfg)
    prepared = publish(cfg, identity, dataset.splits, dataset.stats, expect_files=expect_files)
    log(format_stats(dataset.stats))
    log(f"dataset written to {prepared.dir}")
    return prepared


def run_dataset(run_dir: str | Path, *, log: Callable[[str], None] = print) -> PreparedDataset:
    """Exactly the dataset a run was trained on: its recorded folder, or, when that is gone, a rebuild from the
    run's recorded exports and data config that must reproduce every split file's sha256. One clear error otherwise."""
    record = read_run_record(run_dir)
    folder = Path(record["dir"])
    found = open_dataset(folder, record["key"])
    if found is not None:
        if found.files != record["files"]:
            raise ReplicaInputError(
                "this dataset folder no longer holds the files the run was trained on (sha256 mismatch); delete "
                "it and evaluate again to rebuild it from the run's exports", path=str(folder),
            )
        return found
    cfg = parse_data_config(record["data"])
    gone = [path for path in cfg.exports if not Path(path).exists()]
    if gone:
        raise ReplicaInputError(
            f"the run's dataset folder is gone and its export {display_path(gone[0])} is missing; restore either to "
            "evaluate this run", path=str(folder),
        )
    identity = dataset_identity(cfg)
    if identity.exports_sha256 != record["exports_sha256"]:
        raise ReplicaInputError(
            "the run's dataset folder is gone and its exports changed since training (sha256 mismatch); restore "
            f"the exports it was trained on ({', '.join(map(display_path, cfg.exports))})", path=str(folder),
        )
    if identity.key != record["key"]:
        raise ReplicaInputError(
            "the run's dataset folder is gone and this Replica version prepares data differently; evaluate it "
            "with the Replica version that trained it", path=str(folder),
        )
    log(f"the run's dataset folder is gone: rebuilding it from {len(cfg.exports)} export path(s)")
    return prepare_dataset(record["data"], log=log, expect_files=record["files"])


def private_values(data_cfg: Mapping | DictConfig) -> PrivateValues:
    """What the masking finds in the exports (phones, emails, URLs, IBANs, cards, contact names), for counting leaks
    in generated text with the same detection. Private: keep it in memory, never write or log it."""
    cfg = parse_data_config(data_cfg)
    loaded = _load(cfg, lambda line: None)
    me_senders = resolve_me(loaded.messages, cfg.me, loaded.owners)
    cleaned, _ = clean_messages(loaded.messages, media=cfg.media)
    chat_languages = detect_chat_languages(cleaned, sample=cfg.language_sample, seed=cfg.seed)
    return pii_values(
        ((message.text, chat_languages.get(chat_key(message))) for message in cleaned),
        _contacts(loaded.messages, me_senders),
        own_names=[*cfg.me, *me_senders],
        region=cfg.phone_region,
        options=cfg.mask,
    )


def kept_splits(folder: str | None) -> dict[str, str]:
    """example_key -> split of every example of the prepared dataset in `folder` (none when `folder` is None)."""
    if folder is None:
        return {}
    dataset = published(folder)
    return {example_key(example): split for split in SPLITS for example in read_jsonl(dataset.split_path(split))}


def masking_inputs(data_cfg: Mapping | DictConfig) -> tuple[list[str], list[str]]:
    """What the dataset's masker was built from besides the settings: every sender of the exports except the user
    (most active first) and the phone regions their numbers use. Private: keep it in memory, never write or log it.
    Empty when the exports are gone."""
    cfg = parse_data_config(data_cfg)
    if not all(Path(path).exists() for path in cfg.exports):
        return [], []
    loaded = _load(cfg, lambda line: None)
    contacts = _contacts(loaded.messages, resolve_me(loaded.messages, cfg.me, loaded.owners))
    return contacts, regions_seen([*(message.text for message in loaded.messages), *contacts])


def _load(cfg: DataSection, log: Callable[[str], None]) -> LoadResult:
    loaded = load_exports(cfg.exports, date_order=cfg.date_order, limits=input_limits(cfg), timezone=cfg.timezone)
    for path, reason in loaded.skipped:
        log(f"skipped {display_path(path)}: {reason}")
    return loaded  # never empty: load_exports refuses exports without messages, naming every format it reads


def _title_masking(messages: Iterable[Message], me_senders: set[str], masker: PiiMasker) -> Callable[[str], str]:
    """How a chat title becomes the rows' `chat`/`session` label: masked like a message; a chat where no contact
    writes is named after someone no sender list knows, so every word of its title is masked too."""
    chats, spoken = set(), set()
    for message in messages:
        chats.add(chat_key(message))
        if message.sender is not None and message.sender not in me_senders:
            spoken.add(chat_key(message))
    silent = {chat for _, chat in chats - spoken}
    return lambda title: mask_title(title, masker) if title in silent else masker.mask(title)


def _contacts(messages: Iterable[Message], me_senders: set[str]) -> list[str]:
    """Every sender except the user, most active first."""
    return [sender for sender, _ in sender_counts(messages).most_common() if sender not in me_senders]
