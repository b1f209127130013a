"""Content-addressed prepared datasets: `<data.datasets_dir>/<key>/`, written as one set, never rewritten.

The key is a sha256 of the exports' bytes (every file the loader reads, with its path inside the export) and of the
resolved data config (every key that changes the output). A dataset folder is built in a staging folder beside its
final place, fsync'ed, and published by one atomic rename: a reader sees all of a dataset or nothing, a crash leaves
only a staging folder (removed by the next run), and two runs with different exports or settings never share a folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from replica import __version__
from replica.atomic import replace_dir, write_json, write_jsonl
from replica.errors import ReplicaInputError
from replica.ingest.sources import SKIPPED_DIR_NAMES, is_ignored_name
from replica.settings import SPLITS, DataSection

MANIFEST = "manifest.json"
RUN_RECORD = "dataset.json"  # in a run folder: the identity of the dataset the run was trained on
STATS_FILE = "stats.json"
SPLIT_FILES = tuple(f"{split}.jsonl" for split in SPLITS)
STORE_FORMAT = 2  # bump when the files of a dataset folder or the key's ingredients change
BLOCK = 1 << 20
# Data keys that do not change the prepared dataset: the exports (hashed by content), where it is stored, the input
# limits (which only stop a run), and what only training reads (prompt format, token limit, the label ablation).
UNKEYED = ("exports", "datasets_dir", "max_input_mib", "max_messages", "format", "max_length", "relationship_in_prompt")


@dataclass(frozen=True, slots=True)
class DatasetIdentity:
    """What a prepared dataset is a function of: the exports' content and the resolved data config."""

    key: str
    exports_sha256: str
    config: dict[str, Any]  # the keyed data config (no exports, no datasets_dir)


@dataclass(frozen=True, slots=True)
class PreparedDataset:
    """A published dataset folder and the sha256 of each of its split files."""

    dir: Path
    key: str
    exports_sha256: str
    files: dict[str, str]  # split file name -> sha256

    def split_path(self, split: str) -> Path:
        return self.dir / f"{split}.jsonl"

    def record(self, data_cfg: DataSection, data: Mapping[str, Any]) -> dict[str, Any]:
        """What a run folder stores about its dataset: identity, folder, file hashes, and the resolved `data` group
        (`data_cfg` parsed from it) with absolute paths, to rebuild it."""
        data = {
            **data,
            "exports": [str(Path(path).resolve()) for path in data_cfg.exports],
            "datasets_dir": str(Path(data_cfg.datasets_dir).resolve()),
        }
        return {
            "key": self.key,
            "dir": str(self.dir.resolve()),
            "exports_sha256": self.exports_sha256,
            "files": dict(self.files),
            "data": data,
        }


# ---- identity -----------------------------------------------------------------------------------------------
def dataset_identity(cfg: DataSection) -> DatasetIdentity:
    keyed = {key: value for key, value in asdict(cfg).items() if key not in UNKEYED}
    parent = keyed.pop("keep_splits_of", None)
    if parent is not None:  # keyed by what that dataset holds, not by where it lies
        keyed["keep_splits_of"] = published(parent).key
    exports = exports_sha256(cfg.exports)
    recipe = {"store_format": STORE_FORMAT, "replica": __version__, "exports_sha256": exports, "config": keyed}
    key = hashlib.sha256(json.dumps(recipe, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()
    return DatasetIdentity(key, exports, keyed)


def exports_sha256(exports: Sequence[str]) -> str:
    """sha256 over every file the loader reads under the export paths: its path inside the export, size and bytes.

    Folders are walked as the loader walks them (hidden folders and media attachments left out); non-regular files
    (FIFOs, devices) and missing paths contribute their name only and are never opened.
    """
    digest = hashlib.sha256()
    for index, given in enumerate(exports):
        root = Path(given).expanduser()
        digest.update(f"export {index}\0".encode())
        for relative, path in _export_files(root):
            digest.update(relative.encode("utf-8", "surrogateescape") + b"\0")
            try:
                info = os.stat(path)
            except OSError:
                digest.update(b"missing\0")
                continue
            if not stat.S_ISREG(info.st_mode):
                digest.update(b"not a regular file\0")
                continue
            digest.update(f"{info.st_size}\0".encode())
            try:
                digest.update(file_sha256(path).encode())
            except OSError:  # unreadable: the loader names it (or skips it) with the reason
                digest.update(b"unreadable\0")
    return digest.hexdigest()


def _export_files(root: Path) -> Iterator[tuple[str, Path]]:
    if not root.is_dir():
        yield root.name, root
        return
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in SKIPPED_DIR_NAMES)
        for name in sorted(names):
            if not is_ignored_name(name):
                path = Path(folder, name)
                yield path.relative_to(root).as_posix(), path


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


# ---- reading ------------------------------------------------------------------------------------------------
def dataset_folder(cfg: DataSection, identity: DatasetIdentity) -> Path:
    return Path(cfg.datasets_dir).expanduser() / identity.key


def open_dataset(folder: Path, key: str) -> PreparedDataset | None:
    """The published dataset in `folder` (its files checked against its manifest), or None if there is none."""
    manifest = folder / MANIFEST
    if not folder.exists():
        return None
    if not manifest.is_file():
        raise _damaged(folder, MANIFEST)
    try:
        meta = json.loads(manifest.read_text(encoding="utf-8"))
        files, exports = dict(meta["files"]), str(meta["exports_sha256"])
    except (OSError, ValueError, KeyError, TypeError):
        raise _damaged(folder, MANIFEST) from None
    if meta.get("key") != key or set(files) != set(SPLIT_FILES):
        raise _damaged(folder, MANIFEST)
    for name, expected in files.items():
        if not (folder / name).is_file() or file_sha256(folder / name) != expected:
            raise _damaged(folder, name)
    return PreparedDataset(folder, key, exports, files)


def published(folder: str | Path) -> PreparedDataset:
    """The prepared dataset in `folder`, whatever its key (its files checked against its manifest)."""
    folder = Path(folder).expanduser()
    try:
        key = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))["key"]
    except (OSError, ValueError, KeyError, TypeError):
        raise ReplicaInputError("not a prepared dataset folder (no readable manifest.json); give the folder "
                                "`replica prepare` printed", path=str(folder)) from None
    dataset = open_dataset(folder, str(key))
    if dataset is None:
        raise ReplicaInputError("no such dataset folder", path=str(folder))
    return dataset


def _damaged(folder: Path, name: str) -> ReplicaInputError:
    return ReplicaInputError(
        f"{name} was changed or removed after the dataset was written; delete this folder and it is rebuilt "
        "from the exports", path=str(folder),
    )


def read_run_record(run_dir: str | os.PathLike) -> dict[str, Any]:
    """The run folder's record of its dataset (written when training starts); one clear error if absent/broken."""
    path = Path(run_dir) / RUN_RECORD
    if not path.is_file():
        raise ReplicaInputError(
            f"no {RUN_RECORD}: not a run folder of this Replica version (it records which dataset the run was "
            "trained on); pass the run folder train.py printed, or retrain", path=str(Path(run_dir)),
        )
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        if not all(isinstance(record[key], str) for key in ("key", "dir", "exports_sha256")):
            raise TypeError
        if not isinstance(record["files"], dict) or not isinstance(record["data"], dict):
            raise TypeError
    except (OSError, ValueError, KeyError, TypeError):
        raise ReplicaInputError("unreadable dataset record; retrain the run to write it again", path=str(path)) from None
    return record


def read_stats(dataset: PreparedDataset) -> dict:
    return json.loads((dataset.dir / STATS_FILE).read_text(encoding="utf-8"))


# ---- writing ------------------------------------------------------------------------------------------------
def publish(
    cfg: DataSection,
    identity: DatasetIdentity,
    splits: Mapping[str, list[dict]],
    stats: dict,
    *,
    expect_files: Mapping[str, str] | None = None,
) -> PreparedDataset:
    """Write the dataset into a staging folder and publish it as `<datasets_dir>/<key>` in one rename.

    With `expect_files`, the dataset is published only if every split file has the expected sha256 (a rebuild of a
    run's dataset). If another process published the same key first, its folder is kept and ours dropped.
    """
    final = dataset_folder(cfg, identity)
    with replace_dir(final, keep_complete=lambda folder: (folder / MANIFEST).is_file()) as staging:
        files = {}
        for split in SPLITS:
            write_jsonl(staging / f"{split}.jsonl", splits[split])
            files[f"{split}.jsonl"] = file_sha256(staging / f"{split}.jsonl")
        if expect_files is not None:
            _check_expected(files, expect_files)
        write_json(staging / STATS_FILE, stats)
        write_json(staging / MANIFEST, {
            "key": identity.key,
            "exports_sha256": identity.exports_sha256,
            "config": identity.config,
            "files": files,
            "store_format": STORE_FORMAT,
            "replica_version": __version__,
        })
    return open_dataset(final, identity.key)  # ours, or the same dataset a concurrent run published first


def _check_expected(files: Mapping[str, str], expected: Mapping[str, str]) -> None:
    differ = [name for name in SPLIT_FILES if files.get(name) != expected.get(name)]
    if differ:
        raise ReplicaInputError(
            f"the rebuilt dataset differs from the one the run was trained on ({', '.join(differ)}: sha256 "
            "mismatch), so the run cannot be scored on its own data; evaluate it with the Replica version that "
            "trained it"
        )
