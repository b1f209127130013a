"""Dataset identity: content-addressed datasets written as one set, and runs judged on exactly their own data.

Everything runs through the real CLIs (`replica prepare`, `train.py`, `evaluate.py`) on invented exports written
here: chat X (the user's replies all say "alfa", the contact is Luca Ferri) and chat Y ("beta", Sara Conti). Which
dataset a step used is checked by those words and by sha256 of the files, never by what the code reports.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from replica.training.inputs import prepare_run_dataset
from tests.helpers import FAST_OVERRIDES, assert_one_line_error, tiny_cfg, train_tiny

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
SPLIT_FILES = ("train.jsonl", "val.jsonl", "test.jsonl")
ME = "data.me=['Marco Bianchi']"
SMALL_EPOCH = "trainer.val_check_interval=6"  # the invented chats make 9 train batches, fewer than the default 12


def write_export(folder: Path, contact: str, word: str, days: int = 30) -> Path:
    """A WhatsApp export: one evening session a day, the contact asks, Marco answers with `word` in every reply."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for day in range(days):
        date = (datetime(2024, 1, 1) + timedelta(days=day)).strftime("%d/%m/%Y")
        for turn in range(3):
            lines.append(f"{date}, 20:{turn * 20:02d} - {contact}: allora {word} come va oggi, giorno {day} parte {turn}?")
            lines.append(f"{date}, 20:{turn * 20 + 5:02d} - Marco Bianchi: tutto {word} qui, giorno {day} parte {turn}")
    (folder / f"WhatsApp Chat with {contact}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def cli(*args: str, cwd: Path = ROOT, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=cwd, env=ENV, capture_output=True, text=True,
                          timeout=timeout)


def prepare(store: Path, export: Path, *overrides: str) -> subprocess.CompletedProcess:
    return cli("-m", "replica.cli", "prepare", f"data.exports=[{export}]", ME, f"data.datasets_dir={store}",
               *overrides)


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def published(store: Path) -> dict[str, dict[str, str]]:
    """Every visible dataset folder of the store -> sha256 of each file in it."""
    if not store.exists():
        return {}
    return {
        folder.name: {path.name: sha256(path) for path in sorted(folder.iterdir())}
        for folder in sorted(store.iterdir()) if not folder.name.startswith(".")
    }


def assert_complete(folder: Path) -> None:
    """A visible dataset folder holds every file, and each split file matches the sha256 its manifest lists."""
    assert sorted(path.name for path in folder.iterdir()) == [
        "manifest.json", "stats.json", "test.jsonl", "train.jsonl", "val.jsonl"]
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["key"] == folder.name
    assert manifest["files"] == {name: sha256(folder / name) for name in SPLIT_FILES}


# ---- prepare: one folder per (exports, settings), written as one set ------------------------------------------
def test_different_exports_and_settings_get_their_own_folders_and_never_clobber(tmp_path):
    x, y = write_export(tmp_path / "x", "Luca Ferri", "alfa"), write_export(tmp_path / "y", "Sara Conti", "beta")
    store = tmp_path / "datasets"
    assert prepare(store, x).returncode == 0
    first = published(store)
    assert len(first) == 1

    assert prepare(store, y).returncode == 0
    assert prepare(store, x, "data.mask.names=false").returncode == 0
    assert prepare(store, x, "data.context_max=2").returncode == 0
    after = published(store)
    assert len(after) == 4 and all(after[name] == files for name, files in first.items())
    for name in after:
        assert_complete(store / name)
    words = {name: {word for word in ("alfa", "beta") if word in (store / name / "train.jsonl").read_text()}
             for name in after}
    assert sorted(map(sorted, words.values())) == [["alfa"], ["alfa"], ["alfa"], ["beta"]]

    with (x / "WhatsApp Chat with Luca Ferri.txt").open("a", encoding="utf-8") as handle:
        handle.write("01/03/2024, 20:00 - Luca Ferri: alfa ancora una domanda?\n"
                     "01/03/2024, 20:05 - Marco Bianchi: alfa ancora una risposta\n")
    assert prepare(store, x).returncode == 0
    changed = published(store)
    assert len(changed) == 5 and all(changed[name] == files for name, files in after.items())


def test_mask_names_false_is_another_dataset_and_train_keeps_using_the_masked_one(tmp_path):
    x = write_export(tmp_path / "x", "Luca Ferri", "alfa")
    store = tmp_path / "data" / "datasets"
    unmasked = prepare(store, x, "data.mask.names=false")
    assert unmasked.returncode == 0, unmasked.stderr
    (unmasked_dir,) = published(store)
    assert "Luca" in (store / unmasked_dir / "train.jsonl").read_text()

    cfg = tiny_cfg(tmp_path, [f"data.exports=[{x}]", ME])  # train.py's config: masking on by default
    used = prepare_run_dataset(cfg.data, tmp_path / "run" / "dataset.json").dir
    assert used.parent == store and used.name != unmasked_dir
    train_text = (used / "train.jsonl").read_text()
    assert "alfa" in train_text and "Luca" not in train_text and "Ferri" not in train_text
    record = json.loads((tmp_path / "run" / "dataset.json").read_text())
    assert record["key"] == used.name != unmasked_dir
    assert record["files"] == {name: sha256(used / name) for name in SPLIT_FILES}


def test_two_prepares_of_the_same_exports_at_once_publish_one_dataset(tmp_path):
    x = write_export(tmp_path / "x", "Luca Ferri", "alfa")
    store = tmp_path / "datasets"
    command = [sys.executable, "-m", "replica.cli", "prepare", f"data.exports=[{x}]", ME, f"data.datasets_dir={store}"]
    processes = [subprocess.Popen(command, cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True) for _ in range(3)]
    results = [(process.wait(timeout=300), process.stderr.read()) for process in processes]
    assert [code for code, _ in results] == [0, 0, 0], results
    assert sorted(path.name for path in store.iterdir()) == list(published(store))  # no staging folder left
    (name,) = published(store)
    assert_complete(store / name)


def test_a_damaged_dataset_folder_is_refused_in_one_line(tmp_path):
    x = write_export(tmp_path / "x", "Luca Ferri", "alfa")
    store = tmp_path / "datasets"
    assert prepare(store, x).returncode == 0
    (name,) = published(store)
    with (store / name / "test.jsonl").open("a", encoding="utf-8") as handle:
        handle.write('{"context": [], "target": "not from the exports"}\n')
    assert_one_line_error(prepare(store, x), "replica: error:", str(store / name), "test.jsonl")


# ---- kill -9 mid-write --------------------------------------------------------------------------------------
# A real `replica prepare` process that stops after writing one file of the set (so the kill lands between two
# files of one dataset, the moment that used to leave a new train.jsonl beside an old test.jsonl).
PAUSING_PREPARE = """
import sys, time
import replica.prepare.store as store
write_jsonl = store.write_jsonl
def pausing(path, rows):
    count = write_jsonl(path, rows)
    print("wrote", path.name, flush=True)
    if path.name == sys.argv[1]:
        time.sleep(600)
    return count
store.write_jsonl = pausing
from replica.cli import main
sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.parametrize("pause_after", ["train.jsonl", "val.jsonl", "test.jsonl"])
def test_kill_9_between_files_never_leaves_a_readable_mixed_set(tmp_path, pause_after):
    x, y = write_export(tmp_path / "x", "Luca Ferri", "alfa"), write_export(tmp_path / "y", "Sara Conti", "beta")
    store = tmp_path / "datasets"
    assert prepare(store, x).returncode == 0
    before = published(store)

    process = subprocess.Popen(
        [sys.executable, "-c", PAUSING_PREPARE, pause_after, "prepare", f"data.exports=[{y}]", ME,
         f"data.datasets_dir={store}"],
        cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    for line in process.stdout:
        if line.strip() == f"wrote {pause_after}":
            break
    else:
        pytest.fail(f"prepare ended before writing {pause_after}: {process.stderr.read()[-2000:]}")
    os.kill(process.pid, signal.SIGKILL)
    assert process.wait(timeout=30) == -signal.SIGKILL
    assert published(store) == before  # X's dataset untouched, nothing of Y visible

    again = prepare(store, y)
    assert again.returncode == 0, again.stderr
    assert not [path for path in store.iterdir() if path.name.startswith(".")]  # the killed staging is gone
    reference = tmp_path / "reference"
    assert prepare(reference, y).returncode == 0  # Y prepared cleanly, from scratch, elsewhere
    assert {name: files for name, files in published(store).items() if name not in before} == published(reference)


def wait_for_first_entry(store: Path, process: subprocess.Popen, timeout: float = 300) -> bool:
    """Poll (every millisecond) until the store holds a file or folder: the write has begun. False if the process
    ended first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if store.is_dir() and any(store.iterdir()):
            return True
        if process.poll() is not None:
            return False
        time.sleep(0.001)
    return False


def test_kill_9_at_random_moments_of_the_write_leaves_all_of_a_dataset_or_none(tmp_path):
    """Each attempt kills a fresh `prepare` a random 0-30 ms after its first file or folder appears in the store;
    a kill that leaves a staging folder behind provably landed mid-write (the publish never ran)."""
    x = write_export(tmp_path / "x", "Luca Ferri", "alfa", days=600)
    rng = random.Random(8)
    mid_write = []
    for attempt in range(8):
        store = tmp_path / f"datasets-{attempt}"
        command = [sys.executable, "-m", "replica.cli", "prepare", f"data.exports=[{x}]", ME,
                   f"data.datasets_dir={store}"]
        process = subprocess.Popen(command, cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        began = wait_for_first_entry(store, process)
        time.sleep(rng.uniform(0, 0.03))
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        assert began, "prepare ended before writing anything"
        for name in published(store):
            assert_complete(store / name)
        if any(path.name.startswith(".") for path in store.iterdir()):
            assert published(store) == {}  # killed between staging and publish: nothing visible
            mid_write.append(store)
            if len(mid_write) == 2:
                break
    assert mid_write, "no kill landed during the write"
    store = mid_write[0]
    assert prepare(store, x).returncode == 0
    assert not [path for path in store.iterdir() if path.name.startswith(".")]  # the killed staging is gone
    (name,) = published(store)
    assert_complete(store / name)


# ---- training and evaluation on the run's own dataset ----------------------------------------------------------
@pytest.fixture(scope="module")
def run_a(tmp_path_factory):
    """Run A trained on chat X; then chat Y prepared into the same store."""
    root = tmp_path_factory.mktemp("identity")
    x, y = write_export(root / "x", "Luca Ferri", "alfa"), write_export(root / "y", "Sara Conti", "beta")
    data = root / "data"
    _, run_dir = train_tiny(root / "a", [f"data.exports=[{x}]", ME, SMALL_EPOCH], shared_data=data)
    record = json.loads((run_dir / "dataset.json").read_text())
    folder = Path(record["dir"])
    files = {name: sha256(folder / name) for name in SPLIT_FILES}
    test_rows = rows(folder / "test.jsonl")
    assert test_rows and all("alfa" in row["target"] for row in test_rows)
    prepared_y = prepare(data / "datasets", y)
    assert prepared_y.returncode == 0, prepared_y.stderr
    return {"run_dir": run_dir, "x": x, "folder": folder, "files": files, "test_rows": test_rows, "data": data}


def evaluate(run_dir: Path) -> subprocess.CompletedProcess:
    return cli("evaluate.py", f"run_dir={run_dir}", "eval.max_examples=6", timeout=900)


def assert_scored_on_x(run_a) -> None:
    samples = rows(run_a["run_dir"] / "eval" / "samples.jsonl")
    test_pairs = [(row["context"], row["target"]) for row in run_a["test_rows"]]
    assert samples and all((sample["context"], sample["reference"]) in test_pairs for sample in samples)
    assert all("alfa" in sample["reference"] and "beta" not in sample["reference"] for sample in samples)


@pytest.mark.slow
def test_run_a_is_scored_on_x_test_split_after_preparing_y(run_a):
    assert run_a["files"] == json.loads((run_a["run_dir"] / "dataset.json").read_text())["files"]
    done = evaluate(run_a["run_dir"])
    assert done.returncode == 0, done.stderr[-3000:]
    assert_scored_on_x(run_a)
    assert {name: sha256(run_a["folder"] / name) for name in SPLIT_FILES} == run_a["files"]


@pytest.mark.slow
def test_deleted_dataset_is_rebuilt_from_the_runs_exports_and_verified(run_a):
    import shutil

    shutil.rmtree(run_a["folder"])
    done = evaluate(run_a["run_dir"])
    assert done.returncode == 0, done.stderr[-3000:]
    assert {name: sha256(run_a["folder"] / name) for name in SPLIT_FILES} == run_a["files"]
    assert_scored_on_x(run_a)


@pytest.mark.slow
def test_evaluate_refuses_in_one_line_when_the_dataset_cannot_be_reproduced(run_a):
    import shutil

    export = run_a["x"] / "WhatsApp Chat with Luca Ferri.txt"
    original = export.read_bytes()
    moved = run_a["x"].with_name("x-moved")
    folder = run_a["folder"]
    try:
        shutil.rmtree(folder)
        export.write_bytes(original.replace(b"giorno 3 ", b"giorno 4 "))
        assert_one_line_error(evaluate(run_a["run_dir"]), "evaluate.py: error:", str(folder), "exports changed")
        assert not folder.exists()

        export.write_bytes(original)
        run_a["x"].rename(moved)
        assert_one_line_error(evaluate(run_a["run_dir"]), "evaluate.py: error:", str(folder), "is missing")
        moved.rename(run_a["x"])

        (run_a["run_dir"] / "dataset.json").rename(run_a["run_dir"] / "dataset.json.aside")
        assert_one_line_error(evaluate(run_a["run_dir"]), "evaluate.py: error:", "dataset.json")
        (run_a["run_dir"] / "dataset.json.aside").rename(run_a["run_dir"] / "dataset.json")

        assert prepare(run_a["data"] / "datasets", run_a["x"]).returncode == 0
        with (folder / "test.jsonl").open("a", encoding="utf-8") as handle:
            handle.write('{"context": [], "target": "beta"}\n')
        assert_one_line_error(evaluate(run_a["run_dir"]), "evaluate.py: error:", str(folder), "test.jsonl")
    finally:
        if moved.exists():
            moved.rename(run_a["x"])
        export.write_bytes(original)
        shutil.rmtree(folder, ignore_errors=True)
        aside = run_a["run_dir"] / "dataset.json.aside"
        if aside.exists():
            aside.rename(run_a["run_dir"] / "dataset.json")


@pytest.mark.slow
def test_two_train_processes_on_different_exports_at_once(tmp_path):
    data = tmp_path / "data"
    runs = {}
    for word, contact in (("alfa", "Luca Ferri"), ("beta", "Sara Conti")):
        export = write_export(tmp_path / word, contact, word)
        command = [sys.executable, "train.py", *FAST_OVERRIDES, SMALL_EPOCH, f"data.exports=[{export}]", ME,
                   f"paths.data_dir={data}", f"paths.log_dir={tmp_path / 'logs'}", f"hydra.run.dir={tmp_path / word}-run"]
        runs[word] = subprocess.Popen(command, cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True)
    for word, process in runs.items():
        _, stderr = process.communicate(timeout=900)
        assert process.returncode == 0, stderr[-3000:]
    folders = {}
    for word, other in (("alfa", "beta"), ("beta", "alfa")):
        record = json.loads((tmp_path / f"{word}-run" / "dataset.json").read_text())
        folder = Path(record["dir"])
        assert folder.parent == data / "datasets"
        assert record["files"] == {name: sha256(folder / name) for name in SPLIT_FILES}
        text = "".join((folder / name).read_text() for name in SPLIT_FILES)
        assert word in text and other not in text
        folders[word] = folder
        assert (tmp_path / f"{word}-run" / "adapter" / "adapter_model.safetensors").is_file()
    assert folders["alfa"] != folders["beta"]
