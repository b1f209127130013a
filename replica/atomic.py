"""Atomic writes of files and folders: a reader sees the old one or the new one, never half of either."""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from replica.errors import ReplicaInputError


@contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """Open a temp file beside `path`; on success fsync and rename it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, encoding=None if "b" in mode else encoding) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_open(path) as handle:
        handle.write(text)


def write_json(path: str | os.PathLike, obj: Any, indent: int | None = 2) -> None:
    with atomic_open(path) as handle:
        json.dump(obj, handle, ensure_ascii=False, indent=indent)
        handle.write("\n")


def write_jsonl(path: str | os.PathLike, rows: Iterable[dict]) -> int:
    """Write one JSON object per line; return the number of rows."""
    count = 0
    with atomic_open(path) as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False))
            handle.write("\n")
            count += 1
    return count


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


STAGING_MARK = ".staging-"  # in the name of every staging folder: .<target>.staging-<host>-<pid>-<random>
PREVIOUS_SUFFIX = ".previous"  # a replaced folder, set aside for the instant of the swap


@contextmanager
def replace_dir(
    target: str | os.PathLike, *, keep_complete: Callable[[Path], bool] | None = None, shared: bool = False
) -> Iterator[Path]:
    """Build a folder in a staging folder beside `target`, then swap it in whole when the block succeeds.

    A reader sees the old folder or the new one (for the instant between two renames, none), never a mix; a failure
    or a kill before the swap leaves `target` as it was, and the staging folder is removed (a killed process's by
    the next call in the same parent). With `keep_complete`, for content-addressed folders built once, a complete
    folder another writer already put at `target` is kept and ours dropped. `shared` gives the folder the
    permissions a plain mkdir would (the umask's) instead of a temp folder's private 0700.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(target.parent)
    prefix = f".{target.name}{STAGING_MARK}{socket.gethostname()}-{os.getpid()}-"
    staging = Path(tempfile.mkdtemp(prefix=prefix, dir=target.parent))
    try:
        if shared:
            umask = os.umask(0)
            os.umask(umask)
            staging.chmod(0o777 & ~umask)
        yield staging
        _fsync_dir(staging)
        if keep_complete is None:
            _swap(staging, target)
        else:
            _publish_once(staging, target, keep_complete)
        _fsync_dir(target.parent)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _swap(staging: Path, target: Path) -> None:
    """Rename `staging` to `target`; an existing `target` is set aside first and put back if the rename fails."""
    previous = staging.with_name(staging.name + PREVIOUS_SUFFIX)
    replaced = target.exists()
    if replaced:
        os.rename(target, previous)
    try:
        os.rename(staging, target)
    except BaseException:
        if replaced:
            os.rename(previous, target)
        raise
    shutil.rmtree(previous, ignore_errors=True)


def _publish_once(staging: Path, target: Path, is_complete: Callable[[Path], bool]) -> None:
    """Rename `staging` to `target`; if a concurrent writer got there first with a complete folder, keep theirs."""
    try:
        os.rename(staging, target)
    except OSError:
        if not is_complete(target):
            raise ReplicaInputError("an incomplete build is in the way; delete it and rerun", path=str(target)) from None


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_stale_staging(parent: Path) -> None:
    """Clean up after processes of this machine killed mid-write: their staging folders in `parent` are deleted,
    and a folder they had set aside for a swap is put back if nothing took its place."""
    mark = f"{STAGING_MARK}{socket.gethostname()}-"
    for path in parent.glob(f".*{mark}*"):
        name, _, owner = path.name.rpartition(mark)
        pid = owner.split("-", 1)[0]
        if not pid.isdigit() or _alive(int(pid)):
            continue
        target = parent / name[1:]
        if path.name.endswith(PREVIOUS_SUFFIX) and not target.exists():
            os.rename(path, target)
        else:
            shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        pass
    return True
