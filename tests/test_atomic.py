"""atomic.replace_dir: a folder is built beside its target and swapped in whole, or not at all."""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from replica.atomic import replace_dir
from replica.errors import ReplicaInputError

ROOT = Path(__file__).resolve().parents[1]
FILES = ("a.txt", "b.txt", "c.txt")


def write_generation(folder: Path, generation: int) -> None:
    for name in FILES:
        (folder / name).write_text(str(generation))


def generations(folder: Path) -> set[str]:
    """The generation numbers the files of one folder hold, read through one open handle on the folder."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        seen = set()
        for name in os.listdir(fd):
            with open(name, opener=lambda path, flags: os.open(path, flags, dir_fd=fd)) as handle:
                seen.add(handle.read())
        return seen
    finally:
        os.close(fd)


def test_a_finished_block_replaces_the_folder_and_leaves_nothing_beside_it(tmp_path):
    target = tmp_path / "out"
    with replace_dir(target) as staging:
        assert staging.parent == tmp_path and not target.exists()
        write_generation(staging, 1)
    with replace_dir(target) as staging:
        (staging / "only.txt").write_text("2")
    assert sorted(path.name for path in target.iterdir()) == ["only.txt"]  # nothing of the old folder is kept
    assert [path.name for path in tmp_path.iterdir()] == ["out"]


def test_a_failure_mid_build_leaves_the_old_folder_intact(tmp_path):
    target = tmp_path / "out"
    with replace_dir(target) as staging:
        write_generation(staging, 1)
    with pytest.raises(RuntimeError, match="disk full"):
        with replace_dir(target) as staging:
            (staging / "a.txt").write_text("2")
            raise RuntimeError("disk full")
    assert generations(target) == {"1"} and sorted(os.listdir(target)) == list(FILES)
    assert [path.name for path in tmp_path.iterdir()] == ["out"]


KILLED_BUILD = """
import sys, time
from pathlib import Path
from replica.atomic import replace_dir
with replace_dir(Path(sys.argv[1])) as staging:
    (staging / "a.txt").write_text("2")
    print("half written", flush=True)
    time.sleep(600)
"""


def test_a_build_killed_mid_write_leaves_the_old_folder_and_the_next_build_cleans_up(tmp_path):
    target = tmp_path / "out"
    with replace_dir(target) as staging:
        write_generation(staging, 1)
    process = subprocess.Popen([sys.executable, "-c", KILLED_BUILD, str(target)], cwd=ROOT, stdout=subprocess.PIPE,
                               text=True)
    assert process.stdout.readline().strip() == "half written"
    os.kill(process.pid, signal.SIGKILL)
    assert process.wait(timeout=30) == -signal.SIGKILL
    assert generations(target) == {"1"}
    assert len(list(tmp_path.iterdir())) == 2  # the killed process's staging folder
    with replace_dir(target) as staging:
        write_generation(staging, 3)
    assert generations(target) == {"3"} and [path.name for path in tmp_path.iterdir()] == ["out"]


def test_a_kill_between_the_two_renames_of_a_swap_is_repaired_by_the_next_call(tmp_path):
    """A process killed after setting the old folder aside and before renaming the new one in: the old one is back."""
    target = tmp_path / "out"
    with replace_dir(target) as staging:
        write_generation(staging, 1)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    aside = tmp_path / f".out.staging-{socket.gethostname()}-{int(dead.stdout)}-x1y2.previous"
    target.rename(aside)
    with replace_dir(tmp_path / "other") as staging:  # any later call in the same parent repairs it
        write_generation(staging, 9)
    assert generations(target) == {"1"} and not aside.exists()


def test_a_reader_never_sees_a_mix_of_two_versions(tmp_path):
    target = tmp_path / "out"
    with replace_dir(target) as staging:
        write_generation(staging, 0)
    seen: list[set[str]] = []
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            try:
                seen.append(generations(target))
            except FileNotFoundError:  # between the two renames of a swap, or the old folder being deleted
                continue

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for generation in range(1, 150):
            with replace_dir(target) as staging:
                write_generation(staging, generation)
    finally:
        done.set()
        reader.join()
    assert len(seen) > 100
    assert all(len(versions) <= 1 for versions in seen), [versions for versions in seen if len(versions) > 1][:3]
    assert generations(target) == {"149"}


def test_a_complete_folder_published_first_by_another_writer_is_kept(tmp_path):
    target = tmp_path / "key"
    complete = lambda folder: (folder / "manifest").is_file()  # noqa: E731
    with replace_dir(target, keep_complete=complete) as staging:
        (staging / "manifest").write_text("first")
        target.mkdir()
        (target / "manifest").write_text("theirs")
    assert (target / "manifest").read_text() == "theirs"
    assert [path.name for path in tmp_path.iterdir()] == ["key"]
    with pytest.raises(ReplicaInputError, match="incomplete build is in the way"):
        with replace_dir(tmp_path / "other", keep_complete=complete) as staging:
            (staging / "manifest").write_text("ours")
            (tmp_path / "other").mkdir()
            (tmp_path / "other" / "half").write_text("")


def test_shared_folders_get_the_umask_permissions_and_others_stay_private(tmp_path):
    umask = os.umask(0o022)
    try:
        with replace_dir(tmp_path / "shared", shared=True):
            pass
        with replace_dir(tmp_path / "private"):
            pass
    finally:
        os.umask(umask)
    assert stat.S_IMODE((tmp_path / "shared").stat().st_mode) == 0o755
    assert stat.S_IMODE((tmp_path / "private").stat().st_mode) == 0o700
