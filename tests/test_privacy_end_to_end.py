"""An export full of personal data through the real `replica prepare` and a real tiny `train.py` run: no written file
and no console line may hold any of the raw values."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from tests.helpers import FAST_OVERRIDES

ROOT = Path(__file__).resolve().parents[1]
ME = "Marco Bianchi"
ONE_TO_ONE = "WhatsApp Chat with Luca Ferri +39 347 111 2233.txt"
GROUP = "WhatsApp Chat with Amici.txt"
BROKEN = "WhatsApp Chat with Giovanna Verdi +39 347 111 2233.txt"  # empty: skipped, and its name is shown
# A chat named after someone who never writes in it (only the user does): no sender list holds her name.
SILENT = "WhatsApp Chat with Ornella Sarti +39 348 222 3344.txt"

# What the contacts write (the forms the masking must catch) and what must survive it.
PERSONAL = [
    "hai sentito Ferri? anche ferri lo dice",
    "Esposito arriva tardi, Nicolò pure",
    "Müller o Muller, come si scrive?",
    "guarda example.io/path/segreto e bit.ly/abc123",
    "il profilo è instagram.com/luca.ferri, il file ftp://files.example.net/x.zip",
    "la carta è 4111.1111.1111.1111",
    "il mio collega americano: (415) 555-0132",
    "scrivimi a luca(at)example(dot)com",
]
KEPT = ["il 12/03/2024 alle 14:30 ho pagato 1.234.567 euro", "ho comprato una maglietta rosa"]
RAW = [
    "Ferri", "ferri", "Esposito", "Müller", "Muller", "Nicolò", "Nicolo", "Zoë", "Giovanna", "Verdi", "Luca", "Rosa",
    "example.io", "segreto", "bit.ly", "abc123", "instagram.com", "files.example.net", "4111", "415) 555",
    "555-0132", "347 111 2233", "3471112233", "luca(at)", "example(dot)", "Ornella", "Sarti", "348 222 3344",
    "3482223344",
]
SHRUNK = [o for o in FAST_OVERRIDES if not o.startswith(("trainer.max_steps=", "trainer.val_check_interval="))]
SHRUNK += ["trainer.max_steps=8", "trainer.val_check_interval=4"]  # a small export: 8 training batches
REPLIES = ["sì certo, ci vediamo alle otto", "va bene, porto io le birre", "ok perfetto, a dopo", "che bello!"]


def write_exports(folder: Path) -> None:
    """Forty days of chats: a 1:1 chat with Luca Ferri, a group with Nicolo Esposito, Zoë Müller and Rosa Neri, and
    a chat with Ornella Sarti where only the user writes (two turns an evening)."""
    folder.mkdir()
    start = datetime(2024, 1, 1, 18, 0)
    one, group, silent = [], [], []
    for day in range(40):
        time = start + timedelta(days=day)
        stamp = lambda minutes: (time + timedelta(minutes=minutes)).strftime("%d/%m/%Y, %H:%M")  # noqa: E731
        said = (PERSONAL + KEPT)[day % (len(PERSONAL) + len(KEPT))]
        one += [f"{stamp(0)} - Luca Ferri: {said}", f"{stamp(1)} - {ME}: {REPLIES[day % len(REPLIES)]}"]
        sender = ("Nicolo Esposito", "Zoë Müller", "Rosa Neri")[day % 3]
        group += [f"{stamp(2)} - {sender}: {said}", f"{stamp(3)} - {ME}: {REPLIES[(day + 1) % len(REPLIES)]}"]
        silent += [f"{stamp(60)} - {ME}: {REPLIES[day % len(REPLIES)]}",
                   f"{stamp(120)} - {ME}: {REPLIES[(day + 2) % len(REPLIES)]}"]
    (folder / ONE_TO_ONE).write_text("\n".join(one) + "\n", encoding="utf-8")
    (folder / SILENT).write_text("\n".join(silent) + "\n", encoding="utf-8")
    (folder / GROUP).write_text("\n".join(group) + "\n", encoding="utf-8")
    (folder / BROKEN).write_text("", encoding="utf-8")


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def leaks(text: str) -> list[str]:
    return [raw for raw in RAW if raw in text]


def strings(value: object) -> list[str]:
    """Every string in a JSON value, keys included."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [*value, *(text for item in value.values() for text in strings(item))]
    if isinstance(value, list):
        return [text for item in value for text in strings(item)]
    return []


# Who each chat is with, by name: the labels reach the prompts, the names nothing (Ornella Sarti's chat has no sender
# but her name is its title; Amici is a group chat given a label of its own).
RELATIONSHIPS = "data.relationships={'Luca Ferri': friend, 'Ornella Sarti': family, Amici: football}"


def test_every_text_field_of_every_dataset_row_is_masked(tmp_path):
    exports = tmp_path / "exports"
    write_exports(exports)
    run(["-m", "replica.cli", "prepare", f"data.exports=[{exports}]", f"data.me=['{ME}']", RELATIONSHIPS,
         f"paths.data_dir={tmp_path / 'data'}"], tmp_path)

    (dataset,) = (tmp_path / "data" / "datasets").iterdir()
    rows = [json.loads(line) for split in ("train", "val", "test")
            for line in (dataset / f"{split}.jsonl").read_text("utf-8").splitlines()]
    for row in rows:
        assert leaks("\n".join(strings(row))) == [], row["session"]
    labels = {row["chat"] for row in rows}
    assert all(row["session"].startswith(row["chat"] + "#") for row in rows)
    # Luca Ferri's and Ornella Sarti's chats: name and number masked; the group keeps its title, which names no one
    assert len(labels) == 3 and "Amici" in labels
    assert all(re.fullmatch(r"<NAME_\d+> <PHONE_\d+>", label) for label in labels - {"Amici"})
    relation = {row["chat"]: (row["relationship"], row["group"]) for row in rows}
    assert relation["Amici"] == ("football", True)
    assert sorted(relation[label] for label in labels - {"Amici"}) == [("family", False), ("friend", False)]
    speakers = {turn["speaker"] for row in rows if row["group"] for turn in row["context"] if turn["role"] == "them"}
    assert speakers and all(re.fullmatch(r"contact_\d+", speaker) for speaker in speakers)  # pseudonyms, not names
    assert not any("speaker" in turn for row in rows if not row["group"] for turn in row["context"])


@pytest.mark.slow
def test_no_written_file_or_console_line_holds_a_raw_value(tmp_path):
    exports = tmp_path / "exports"
    write_exports(exports)
    data = [f"data.exports=[{exports}]", f"data.me=['{ME}']", RELATIONSHIPS, f"paths.data_dir={tmp_path / 'data'}"]
    prepared = run(["-m", "replica.cli", "prepare", *data], tmp_path)
    trained = run(
        [str(ROOT / "train.py"), *SHRUNK, *data, f"paths.log_dir={tmp_path / 'logs'}",
         f"hydra.run.dir={tmp_path / 'run'}"],
        tmp_path,
    )

    console = prepared.stdout + prepared.stderr + trained.stdout + trained.stderr
    assert "skipped" in console and "WhatsApp Chat with <NAME_" in console  # the broken file is named, masked
    assert leaks(console) == []
    written = [path for path in tmp_path.rglob("*") if path.is_file() and exports not in path.parents]
    assert any(path.name == "stats.json" for path in written) and any(path.name == "summary.json" for path in written)
    assert any(path.name == "overrides.yaml" for path in written)  # Hydra's record of the command line is checked too
    meta = json.loads(next(path for path in written if path.name == "replica.json").read_text("utf-8"))
    assert meta["relationship_in_prompt"] and sorted(meta["relationships"]) == ["family", "football", "friend"]
    preview = next(path for path in written if path.name == "data_preview.jsonl").read_text("utf-8")
    assert re.search(r"to: (family|football|friend)", preview)  # what the model sees: the label
    for path in written:
        content = path.read_bytes()
        found = [raw for raw in RAW if raw.encode("utf-8") in content]
        assert found == [], f"{path.relative_to(tmp_path)} holds {found}"

    (dataset,) = (tmp_path / "data" / "datasets").iterdir()  # prepare and train.py share one content-addressed folder
    rows = [json.loads(line) for split in ("train", "val", "test")
            for line in (dataset / f"{split}.jsonl").read_text("utf-8").splitlines()]
    texts = "\n".join(turn["text"] for row in rows for turn in row["context"])
    for kept in KEPT:  # dates, times, amounts and the everyday word "rosa" survive
        assert kept in texts
    for kind in ("NAME", "URL", "CARD", "PHONE", "EMAIL"):
        assert re.search(rf"<{kind}_\d+>", texts), kind
