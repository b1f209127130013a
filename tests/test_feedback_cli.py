"""Teaching a run through the real CLI: `/fix` and `/good` in `replica chat`, and `replica feedback` counting, listing
and deleting what they stored, on a real tiny trained run (the labelled English sample: friend and family)."""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import assert_one_line_error
from tests.test_chat_merge import printed_replies

ROOT = Path(__file__).resolve().parents[1]
FIRST, SECOND, THIRD = "Hello love, are you coming for lunch on sunday?", "Hello love, how was your week?", "ok x"
FIX = "Lovely week, call me on +1 415 555 0132 or sam.rivera@example.org"
PRIVATE = ("415", "555", "0132", "sam.rivera", "example.org")  # the phone's digits and the e-mail of FIX
SCRIPT = "\n".join([
    "/good",  # no reply yet
    f"/fix {FIX}",  # no reply yet
    FIRST,
    "/good",  # stored as friend, the run's default label
    "/good",  # the reply already has feedback
    "/to family",
    SECOND,
    f"/fix {FIX}",  # stored as family; the chat goes on from FIX
    THIRD,
    "/fix",  # no text
    "/good",  # its context holds FIX in place of the second reply
    "/reset",
    "/fix too late",  # the context and its last reply are gone
    "/quit",
]) + "\n"


def replica(*args: str | Path, stdin: str | None = None) -> subprocess.CompletedProcess:
    """`replica ARGS` in a fresh interpreter, offline, with `stdin` as its input."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "replica.cli", *map(str, args)], input=stdin, capture_output=True,
                          text=True, cwd=ROOT, env=env, timeout=600, check=False)


def stored(run: Path) -> list[dict]:
    """The feedback rows as the SQLite file holds them, read without Replica."""
    with sqlite3.connect(run / "feedback" / "feedback.sqlite") as db:
        db.row_factory = sqlite3.Row
        rows = db.execute("SELECT id, relationship, grp, context, reply, correction, good FROM feedback ORDER BY id")
        return [{**row, "context": json.loads(row["context"])} for row in map(dict, rows)]


def them(text: str) -> dict:
    """A turn of the other person."""
    return {"role": "them", "text": text}


def me(text: str) -> dict:
    """A turn of the replica's (or its owner's)."""
    return {"role": "me", "text": text}


@pytest.fixture(scope="module")
def taught(labelled_run, tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """A copy of the labelled run (without feedback other tests gave it) and the one chat session that taught it."""
    run = tmp_path_factory.mktemp("taught") / "run"
    shutil.copytree(labelled_run, run, ignore=shutil.ignore_patterns("feedback"))
    done = replica("chat", run, "--seed", "0", "--max-new-tokens", "16", stdin=SCRIPT)
    assert done.returncode == 0, done.stderr[-2000:]
    return run, done


@pytest.mark.slow
def test_fix_and_good_store_the_reply_its_context_and_label_masked(taught):
    run, done = taught
    first, second, third = printed_replies(done.stdout)
    one, two, three = stored(run)
    assert one == {"id": 1, "relationship": "friend", "grp": 0, "context": [them(FIRST)], "reply": first,
                   "correction": None, "good": 1}
    correction = two["correction"]
    assert re.fullmatch(r"Lovely week, call me on <PHONE_\d+> or <EMAIL_\d+>", correction), correction
    assert two == {"id": 2, "relationship": "family", "grp": 0, "context": [them(FIRST), me(first), them(SECOND)],
                   "reply": second, "correction": correction, "good": 0}
    # the third reply answered the correction, not the replica's second reply
    assert three == {"id": 3, "relationship": "family", "grp": 0, "reply": third, "correction": None, "good": 1,
                     "context": [them(FIRST), me(first), them(SECOND), me(correction), them(THIRD)]}
    files = b"".join(path.read_bytes() for path in (run / "feedback").iterdir())
    assert not [value for value in PRIVATE if value.encode() in files]  # nor in the WAL or a journal
    notices = [line for line in done.stderr.splitlines() if line.startswith(("(", "/"))]
    assert notices == [
        "/good: no reply yet to give feedback on (send a message first)",
        "/fix: no reply yet to give feedback on (send a message first)",
        "(reply marked good: feedback 1)",
        "/good: the last reply already has feedback (replica feedback RUN_DIR --list, --delete ID)",
        "(talking to you as: family)",
        "(correction saved: feedback 2; the chat goes on from it)",
        "/fix needs the reply you would have sent: /fix TEXT",
        "(reply marked good: feedback 3)",
        "(context cleared)",
        "/fix: no reply yet to give feedback on (send a message first)",
    ]
    assert not [value for value in (*PRIVATE, "Lovely", "too late") if value in done.stderr]  # nothing typed echoed


@pytest.mark.slow
def test_feedback_counts_lists_and_deletes(taught, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(taught[0], run)

    def feedback(*options: str) -> list[str]:
        done = replica("feedback", run, *options)
        assert done.returncode == 0 and not done.stderr, done.stderr
        return done.stdout.splitlines()

    assert [line.split() for line in feedback()] == [["label", "corrections", "good"], ["family", "1", "1"],
                                                     ["friend", "0", "1"]]
    listed = feedback("--list")
    assert [line.split()[:3] for line in listed] == [["1", "friend", "good"], ["2", "family", "correction"],
                                                     ["3", "family", "good"]]
    assert re.search(r"them: Hello love, how was your week\? .* you: Lovely week, call me on <PHONE_\d+> or "
                     r"<EMAIL_\d+>$", listed[1]), listed[1]
    assert not [value for value in PRIVATE if value in "\n".join(listed)]
    assert_one_line_error(replica("feedback", run, "--delete", "2", "7"), "replica feedback: error:", "id 7",
                          "nothing was deleted")
    unknown = replica("feedback", run, "--delete-label", "Priya")
    assert_one_line_error(unknown, "replica feedback: error:", "family, friend")
    assert "Priya" not in unknown.stderr  # the value typed may be a name: never echoed
    assert len(stored(run)) == 3
    assert feedback("--delete-label", "friend") == ["deleted 1 entry"]
    assert feedback("--delete", "2") == ["deleted 1 entry"]
    assert [row["id"] for row in stored(run)] == [3]
    assert feedback("--clear") == ["deleted 1 entry"]
    assert stored(run) == [] and feedback() == ["no feedback yet"] and feedback("--list") == ["no feedback yet"]


@pytest.mark.slow
def test_feedback_reaches_neither_a_merge_nor_an_export(taught, tmp_path):
    run = taught[0]
    assert "Lovely week" in (run / "feedback" / "feedback.sqlite").read_bytes().decode("utf-8", "replace")
    merged, exported = tmp_path / "merged", tmp_path / "gguf"
    assert replica("merge", run, "--out", merged).returncode == 0
    assert replica("export", run, "--gguf", "--out", exported).returncode == 0
    written = [path for folder in (merged, exported) for path in folder.rglob("*") if path.is_file()]
    assert written and not [path for path in written if "feedback" in path.name]
    assert not [path for path in written if b"Lovely week" in path.read_bytes()]


def test_a_merged_folder_keeps_its_own_feedback(tmp_path):
    from replica.feedback.store import FeedbackStore

    merged = tmp_path / "merged"
    merged.mkdir()
    (merged / "config.json").write_text("{}", encoding="utf-8")
    meta = {"format": "role_tokens", "generation": {}}
    (merged / "replica.json").write_text(json.dumps(meta), encoding="utf-8")
    FeedbackStore.of_run(merged, meta).add([them("you up?")], "yes", correction="yes, why", relationship=None)
    done = replica("feedback", merged)
    assert done.returncode == 0 and not done.stderr, done.stderr
    assert [line.split() for line in done.stdout.splitlines()] == [["label", "corrections", "good"], ["(none)", "1", "0"]]


@pytest.mark.parametrize("options, fragment", [
    (["--delete", "x"], "must be a whole number"),
    (["--delete", "0"], "at least 1"),
    (["--list", "--clear"], "not allowed with"),
])
def test_bad_flags_are_one_line(tmp_path, options, fragment):
    assert_one_line_error(replica("feedback", tmp_path, *options), "replica feedback: error:", fragment)


def test_a_folder_that_is_no_run_is_one_line(tmp_path):
    assert_one_line_error(replica("feedback", tmp_path / "nope"), "replica feedback: error:", "no such run directory")
    assert_one_line_error(replica("feedback", tmp_path), "replica feedback: error:", "incomplete run")
    assert not (tmp_path / "feedback").exists()
