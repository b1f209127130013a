"""Overlapping exports of one chat (Android Jan-Jun, iOS Mar-Sep, a 12-hour-clock Jan-Dec) give the dataset of
the single full export, through the real `replica prepare`; different chats are never merged."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import zipfile
from datetime import date, datetime, timedelta
from pathlib import Path

from replica.ingest import load_exports
from replica.prepare.dedup import drop_overlaps
from replica.prepare.placeholders import mark_placeholders, shape

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
ME, PAUL, NINA = "Léa Martin", "Paul Girard", "Nina Roy"
WORDS = ("coffee tomorrow morning train late again the bakery opens early we could walk along river after work "
         "maybe bring umbrella forecast says rain saturday market was busy found those old photos call you "
         "tonight finished the book ending surprised me").split()


def conversation_log(seed: int = 7) -> list[tuple[datetime, str, str]]:
    """An invented year of chat: (time with seconds, sender, text); 'media' marks a photo."""
    rng = random.Random(seed)
    log = []
    day = datetime(2024, 1, 2, 8, 0, 0)
    while day.year == 2024:
        moment = day + timedelta(hours=rng.randint(0, 12), seconds=rng.randint(0, 59))
        for turn in range(rng.randint(4, 9)):
            sender = (ME, PAUL)[(turn + rng.randint(0, 1)) % 2]
            if rng.random() < 0.08:
                text = "media"
            else:
                text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 9)))
            log.append((moment, sender, text))
            if rng.random() < 0.1:  # a same-minute repeat inside one export: both copies are real messages
                log.append((moment + timedelta(seconds=1), sender, "ok"))
            moment += timedelta(seconds=rng.randint(20, 400))
        day += timedelta(days=rng.randint(1, 4))
    return log


def android(log, clock24: bool = True) -> str:
    lines = []
    for time, sender, text in log:
        if clock24:
            stamp = time.strftime("%d/%m/%Y, %H:%M")
        else:
            stamp = f"{time.month}/{time.day}/{time:%y}, {int(time.strftime('%I'))}:{time:%M} {time:%p}"
        lines.append(f"{stamp} - {sender}: " + ("<Media omitted>" if text == "media" else text))
    return "\n".join(lines) + "\n"


def ios(log) -> str:
    lines = ["[" + log[0][0].strftime("%d/%m/%Y, %H:%M:%S") + "] Paul Girard: \u200eMessages and calls are "
             "end-to-end encrypted. No one outside of this chat, not even WhatsApp, can read or listen to them."]
    for time, sender, text in log:
        body = "\u200eimage omitted" if text == "media" else text
        lines.append(f"[{time:%d/%m/%Y, %H:%M:%S}] {sender}: {body}")
    return "\r\n".join(lines) + "\r\n"


def between(log, first: date, last: date):
    return [row for row in log if first <= row[0].date() <= last]


def group_chat(log) -> str:
    """Another chat where Paul writes the same words in the same minute as in the DM, now and then."""
    rows = []
    for index, (time, sender, text) in enumerate(log):
        if index % 9 == 0 and text != "media":
            rows.append((time, PAUL, text))  # coincides with the DM when Paul sent it there
            rows.append((time + timedelta(minutes=2), NINA, "same here " + text))
            rows.append((time + timedelta(minutes=3), ME, "see you all"))
    return android(rows)


def prepare(exports: list[Path], dataset: Path) -> tuple[dict, dict[str, list[dict]], str]:
    listed = ",".join(str(path) for path in exports)
    result = subprocess.run(
        [sys.executable, "-m", "replica.cli", "prepare", f"data.exports=[{listed}]", f"data.datasets_dir={dataset}",
         f"data.me=['{ME}']"],
        capture_output=True, text=True, env=ENV, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    (dataset,) = dataset.iterdir()  # the one content-addressed folder of these exports
    splits = {
        name: [json.loads(line) for line in (dataset / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()]
        for name in ("train", "val", "test")
    }
    return json.loads((dataset / "stats.json").read_text(encoding="utf-8")), splits, result.stdout


def test_three_overlapping_exports_give_the_full_exports_dataset(tmp_path):
    log = conversation_log()
    first_half = between(log, date(2024, 1, 1), date(2024, 6, 30))
    middle = between(log, date(2024, 3, 1), date(2024, 9, 30))
    group = tmp_path / "group"
    group.mkdir()
    (group / "WhatsApp Chat with Climbing.txt").write_text(group_chat(log), encoding="utf-8")

    full = tmp_path / "full"
    full.mkdir()
    (full / f"WhatsApp Chat with {PAUL}.txt").write_text(android(log), encoding="utf-8")

    parts = tmp_path / "parts"
    (parts / "android-june").mkdir(parents=True)
    (parts / "android-june" / f"WhatsApp Chat with {PAUL}.txt").write_text(android(first_half), encoding="utf-8")
    with zipfile.ZipFile(parts / f"WhatsApp Chat - {PAUL}.zip", "w") as archive:
        archive.writestr("_chat.txt", ios(middle).encode("utf-8"))
    (parts / "us-phone").mkdir()
    (parts / "us-phone" / f"WhatsApp Chat with {PAUL}.txt").write_text(android(log, clock24=False), encoding="utf-8")

    full_stats, full_splits, _ = prepare([full, group], tmp_path / "dataset-full")
    stats, splits, printed = prepare([parts, group], tmp_path / "dataset-parts")

    assert splits == full_splits  # same examples, same order, same split
    seen: dict[str, str] = {}
    for name, examples in splits.items():
        for example in examples:
            key = json.dumps([example["context"], example["target"], example["time"]], ensure_ascii=False)
            assert seen.setdefault(key, name) == name, "an example sits in two splits"
    assert len(seen) == stats["examples"]["total"] == full_stats["examples"]["total"]

    # Everything the Jan-Jun and Mar-Sep exports hold is also in the Jan-Dec one: all of it is dropped
    # (the iOS file's own encryption notice is not in the others and stays, to be dropped as a system line).
    assert stats["duplicates"]["dropped"] == len(first_half) + len(middle)
    assert stats["messages"]["dropped"]["duplicate"] == len(first_half) + len(middle)
    assert stats["duplicates"]["merged_chats"] == 1
    rows = {(row["platform"], row["first"], row["last"], row["dropped"]) for row in stats["duplicates"]["files"]}
    assert rows == {
        ("whatsapp", first_half[0][0].date().isoformat(), first_half[-1][0].date().isoformat(), len(first_half)),
        ("whatsapp", middle[0][0].date().isoformat(), middle[-1][0].date().isoformat(), len(middle)),
    }
    assert full_stats["duplicates"]["dropped"] == 0
    assert f"{len(first_half) + len(middle)} dropped" in printed
    assert PAUL not in printed and "Paul" not in json.dumps(stats)  # files are numbered, never named


def test_two_halves_of_one_chat_join_into_the_full_chat_even_when_renamed(tmp_path):
    log = conversation_log(seed=11)
    early, late = between(log, date(2024, 1, 1), date(2024, 7, 31)), between(log, date(2024, 6, 1), date(2024, 12, 31))
    (tmp_path / "paul-early.txt").write_text(android(early), encoding="utf-8")
    (tmp_path / "paul-late.txt").write_text(android(late), encoding="utf-8")
    (tmp_path / "full.txt").write_text(android(log), encoding="utf-8")
    merged, overlaps = drop_overlaps(load_exports([tmp_path / "paul-early.txt", tmp_path / "paul-late.txt"]))
    whole = load_exports([tmp_path / "full.txt"]).messages
    assert [(m.time, m.sender, m.text, m.kind) for m in merged] == [(m.time, m.sender, m.text, m.kind) for m in whole]
    assert len({m.chat for m in merged}) == 1  # one conversation, not two chats
    overlap_rows = len(between(log, date(2024, 6, 1), date(2024, 7, 31)))
    assert overlaps.dropped == overlap_rows


def test_different_chats_sharing_a_few_identical_messages_are_never_merged(tmp_path):
    log = conversation_log(seed=3)
    (tmp_path / f"WhatsApp Chat with {PAUL}.txt").write_text(android(log), encoding="utf-8")
    (tmp_path / "WhatsApp Chat with Climbing.txt").write_text(group_chat(log), encoding="utf-8")
    loaded = load_exports([tmp_path])
    kept, overlaps = drop_overlaps(loaded)
    assert overlaps.dropped == 0 and overlaps.merged_chats == 0
    assert len(kept) == len(loaded.messages)
    assert {m.chat for m in kept} == {PAUL, "Climbing"}


def test_cross_sender_bracket_lines_become_media_and_other_repeats_show_only_their_shape(tmp_path):
    # Invented notices no locale table knows, as an app of an unlisted language would write them.
    lines = []
    for day in range(1, 9):
        lines += [f"0{day % 9 + 1}/02/2024, 10:0{day % 9} - Ayşe Kaya: <média retenu par l'appli>",
                  f"0{day % 9 + 1}/02/2024, 11:0{day % 9} - Can Demir: <média retenu par l'appli>",
                  f"0{day % 9 + 1}/02/2024, 12:0{day % 9} - Can Demir: Ce contenu a disparu",
                  f"0{day % 9 + 1}/02/2024, 12:1{day % 9} - Ayşe Kaya: Ce contenu a disparu",
                  f"0{day % 9 + 1}/02/2024, 12:2{day % 9} - Ayşe Kaya: <sadece ben>"]
    path = tmp_path / "WhatsApp Chat with Can Demir.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    marked, report = mark_placeholders(load_exports([path]).messages)
    placeholder = [m for m in marked if m.time.hour == 10 or m.time.hour == 11]
    assert {(m.kind, m.media, m.text) for m in placeholder} == {("media", "other", "")}
    one_sender = [m for m in marked if m.time.minute >= 20]
    assert {(m.kind, m.text) for m in one_sender} == {("text", "<sadece ben>")}  # one sender: could be words
    assert report[0] == {"shown": "<média retenu par l'appli>", "placeholder": True, "messages": 16, "senders": 2}
    assert report[1] == {"shown": "Xx xxxxxxx x xxxxxxx", "placeholder": False, "messages": 16, "senders": 2}
    assert len(report) == 2
    assert shape("IMG-0042.jpg (dosya ekli) 😂") == "XXX-9999.xxx (xxxxx xxxx) 😂"
