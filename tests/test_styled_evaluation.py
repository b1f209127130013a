"""On a held-out export with a strong personal style, the evaluation must see that fine-tuning learned it.

The export is written here (not the bundled sample): Jamie writes lowercase, with tics ("ngl", "lowkey",
"literally", "lol") and 😂, among contacts who write capitalized, punctuated sentences. Default training config of
the tiny model, then `evaluate.py` as a user runs it.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
USER = "Jamie Park"
CONTACTS = ("Olivia Grant", "Henry Walsh", "Priya Nair")
MESSAGES = 3000

TOPICS = ["the game", "dinner", "the concert", "the trip", "work", "the new flat", "the party", "the match",
          "the exam", "the weekend", "the film", "the gym", "brunch", "the meeting", "the wedding"]
PLACES = ["the station", "Maria's place", "the pub on King Street", "the park", "the office", "the cinema",
          "the market", "the beach", "the library", "the old bakery"]
TIMES = ["at seven", "around eight", "after lunch", "tomorrow morning", "on Friday", "this evening", "at noon",
         "on Sunday", "later tonight", "next week"]
THEIR_OPENERS = ["Are you coming to {topic} {time}?", "Did you hear about {topic}?", "Shall we meet at {place} {time}?",
                 "How was {topic}?", "I am running late for {topic}, sorry.", "Could you bring something for {topic}?",
                 "What do you think about {topic}?", "I found a great spot near {place}.",
                 "Let me know if {time} works for {topic}.", "We are all at {place} now."]
THEIR_FOLLOW = ["That sounds good to me.", "Perfect, see you there.", "I will send the details later.",
                "Please do not forget the tickets.", "Thank you, that helps a lot.", "Great, I will tell the others.",
                "Honestly, I think it will be fine.", "Let us keep it simple this time."]
USER_CORE = ["yeah {time} works", "omg {topic} was so good", "wait where exactly", "im otw", "cant make it {time}",
             "{place}?? bet", "i forgot about {topic}", "sure i can bring snacks", "same tbh", "no way",
             "that was wild", "ok see u {time}", "who else is coming", "im so tired rn", "send pics",
             "we should do {topic} again", "running late sorry", "yesss finally", "idk maybe", "love that"]
USER_TICS = ["ngl", "lowkey", "literally", "lol", "fr", "tbh"]


def user_message(rng: random.Random, slots: dict[str, str]) -> str:
    text = rng.choice(USER_CORE).format(**slots).lower()
    if rng.random() < 0.6:
        tic = rng.choice(USER_TICS)
        text = f"{tic} {text}" if rng.random() < 0.5 else f"{text} {tic}"
    if rng.random() < 0.55:
        text += " " + "😂" * rng.randint(1, 3)
    return text


def their_message(rng: random.Random, slots: dict[str, str], opening: bool) -> str:
    return rng.choice(THEIR_OPENERS if opening else THEIR_FOLLOW).format(**slots)


def write_styled_export(folder: Path, seed: int = 7) -> list[Path]:
    """WhatsApp Android exports, one per contact, MESSAGES messages in all; returns the files."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    lines: dict[str, list[str]] = {contact: [] for contact in CONTACTS}
    when = datetime(2022, 1, 3, 9, 0)
    for _ in range(MESSAGES // 6):
        contact = rng.choice(CONTACTS)
        slots = {"topic": rng.choice(TOPICS), "place": rng.choice(PLACES), "time": rng.choice(TIMES)}
        when += timedelta(hours=rng.randint(7, 30))
        turns = [(contact, their_message(rng, slots, True))]
        for _ in range(rng.randint(2, 3)):
            turns.append((USER, user_message(rng, slots)))
            turns.append((contact, their_message(rng, slots, False)))
        for sender, text in turns:
            when += timedelta(minutes=rng.randint(1, 5))
            lines[contact].append(f"{when:%d/%m/%Y, %H:%M} - {sender}: {text}")
    paths = []
    for contact, rows in lines.items():
        path = folder / f"WhatsApp Chat with {contact}.txt"
        path.write_text("\n".join(rows) + "\n", encoding="utf-8")
        paths.append(path)
    return paths


@pytest.mark.slow
def test_evaluation_sees_the_learned_style_on_a_held_out_export(tmp_path):
    exports = tmp_path / "exports"
    files = write_styled_export(exports)
    assert sum(len(path.read_text(encoding="utf-8").splitlines()) for path in files) >= 2500
    train = subprocess.run(
        [sys.executable, "train.py", f"data.exports=[{exports}]", f"data.me=['{USER}']",
         f"paths.data_dir={tmp_path / 'data'}", f"paths.log_dir={tmp_path / 'logs'}",
         "trainer.enable_progress_bar=false"],
        cwd=ROOT, capture_output=True, text=True, timeout=1500,
    )
    assert train.returncode == 0, train.stderr[-3000:]
    run_dir = next((tmp_path / "logs").glob("train/runs/*/adapter")).parent
    evaluate = subprocess.run(
        [sys.executable, "evaluate.py", f"run_dir={run_dir}", "eval.max_examples=80"],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )
    assert evaluate.returncode == 0, evaluate.stderr[-3000:]
    metrics = json.loads((run_dir / "eval" / "metrics.json").read_text())
    base, tuned = metrics["baseline"], metrics["finetuned"]

    assert tuned["style_similarity"] > base["style_similarity"]
    assert abs(tuned["discriminator_auc"] - 0.5) < abs(base["discriminator_auc"] - 0.5)
    assert metrics["difference"]["style_similarity"]["significant"]
    assert metrics["difference"]["discriminator_auc"]["significant"]
    for side in (base, tuned):
        for key in ("style_similarity", "discriminator_auc", "train_copy_rate", "bertscore_f1"):
            low, high = side["ci"][key]
            assert low <= high
        assert 0 <= side["train_copy_rate"] <= 1
    assert 0 <= metrics["real"]["train_copy_rate"] <= 1
    report = (run_dir / "eval" / "report.md").read_text(encoding="utf-8")
    assert "Training-reply copy rate" in report and "Real-vs-replica discriminator AUC" in report
