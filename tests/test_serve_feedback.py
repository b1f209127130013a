"""`POST /v1/feedback` on a real `replica serve` process and the real tiny labelled run (tests/conftest.py
`labelled_run`): corrections and approvals are stored masked in the served folder, bad bodies are 400s naming their
field, the key is required, nothing of an entry reaches another response or the server's output, and a server
killed mid-stream keeps every entry it acknowledged, whole."""

from __future__ import annotations

import http.client
import json
import shutil
import signal
import sqlite3
import threading
from collections import Counter
from pathlib import Path

import pytest

from replica.feedback.store import FeedbackStore
from tests.serve_helpers import Server, call
from tests.test_serve_relationships import read_split

KEY = "feedback-key-7d2e"
AUTH = {"Authorization": f"Bearer {KEY}"}
MAX_BODY_KB = 16
PHONE = "+39 347 555 0192"  # a fake number: masked in the store, never in a response or the server's output
PHONE_DIGITS = "3475550192"
CONTACT = "Priya"  # a contact of the run's exports (examples/english)
SECRET = "SEGRETISSIMO-feedback-42"
CONVERSATION = [
    {"role": "system", "content": "be brief"},
    {"role": "user", "content": f"{CONTACT} says call her on {PHONE}"},
    {"role": "assistant", "content": "ok will do"},
    {"role": "user", "content": "   "},
    {"role": "user", "content": [{"type": "text", "text": "dinner sunday?"}, {"type": "text", "text": "at 8"}]},
]
# what chat completions make of CONVERSATION: system and blank messages dropped, parts joined by line breaks
CONTEXT_AFTER_THE_FIRST = [{"role": "me", "text": "ok will do"}, {"role": "them", "text": "dinner sunday?\nat 8"}]


def copy_of(run: Path, target: Path) -> Path:
    """The run without anything a server or evaluation wrote into it."""
    shutil.copytree(run, target, ignore=shutil.ignore_patterns("blind", "feedback", "eval"))
    return target


def stored(run: Path) -> dict:
    """The run's feedback entries by id, read back through the store."""
    return {entry.id: entry for entry in FeedbackStore.of_run(run, {}).entries()}


def post(server: Server, body, headers: dict = AUTH):
    return call(server.url, "POST", "/v1/feedback", body, headers)


@pytest.fixture(scope="module")
def default_label(labelled_run) -> str:
    """The label a request without one gets: the most common one of the train split."""
    return Counter(example["relationship"] for example in read_split(labelled_run, "train")).most_common(1)[0][0]


@pytest.fixture(scope="module")
def feedback_run(labelled_run, tmp_path_factory) -> Path:
    return copy_of(labelled_run, tmp_path_factory.mktemp("feedback") / "run")


@pytest.fixture(scope="module")
def server(feedback_run, tmp_path_factory):
    process = Server(feedback_run, tmp_path_factory.mktemp("feedback-log") / "server.log",
                     "--api-key", KEY, "--max-body-kb", str(MAX_BODY_KB), "--max-tokens", "8")
    yield process
    process.stop()


def assert_created(answer) -> int:
    """A 201 whose body is the new entry's id and nothing else."""
    assert answer.status == 201, answer.raw
    body = answer.json()
    assert set(body) == {"id", "object"} and body["object"] == "feedback" and isinstance(body["id"], int), body
    return body["id"]


@pytest.mark.slow
def test_a_correction_and_an_approval_are_stored_masked(server, feedback_run, default_label):
    correction_id = assert_created(post(server, {"messages": CONVERSATION, "reply": "maybe", "correction": f"yes!\n{SECRET}"}))
    good_id = assert_created(post(server, {"messages": CONVERSATION, "reply": "sure", "good": True, "relationship": "family", "group": True}))
    entries = stored(feedback_run)
    correction, good = entries[correction_id], entries[good_id]
    assert (correction.reply, correction.correction, correction.good) == ("maybe", f"yes!\n{SECRET}", False)
    assert (correction.relationship, correction.group) == (default_label, False)
    assert (good.reply, good.correction, good.good) == ("sure", None, True)
    assert (good.relationship, good.group) == ("family", True)
    for entry in (correction, good):
        first, *rest = entry.context
        assert rest == CONTEXT_AFTER_THE_FIRST
        assert first["role"] == "them" and "<PHONE_" in first["text"] and "<NAME_" in first["text"], first
        assert PHONE_DIGITS not in first["text"].replace(" ", "") and CONTACT not in first["text"], first


GOOD = {"messages": CONVERSATION, "reply": "sure", "good": True}
BAD_BODIES = [
    ("reply", {"messages": CONVERSATION, "good": True}),
    ("reply", {**GOOD, "reply": ""}),
    ("reply", {**GOOD, "reply": " \n "}),
    ("reply", {**GOOD, "reply": 7}),
    ("correction", {"messages": CONVERSATION, "reply": "sure"}),
    ("correction", {**GOOD, "good": False}),
    ("correction", {"messages": CONVERSATION, "reply": "sure", "correction": "  "}),
    ("correction", {"messages": CONVERSATION, "reply": "sure", "correction": ["no"]}),
    ("good", {**GOOD, "correction": "no"}),
    ("good", {**GOOD, "good": "true"}),
    ("group", {**GOOD, "group": 1}),
    ("relationship", {**GOOD, "relationship": "Mum"}),
    ("relationship", {**GOOD, "relationship": 3}),
    ("messages", {**GOOD, "messages": []}),
    ("messages", {"reply": "sure", "good": True}),
    ("messages", {**GOOD, "messages": "hi"}),
    ("messages.0.role", {**GOOD, "messages": [{"role": "narrator", "content": "hi"}]}),
    ("messages.0.content", {**GOOD, "messages": [{"role": "user", "content": 5}]}),
    ("body", json.dumps([GOOD])),  # a JSON list, not an object
]


@pytest.mark.slow
@pytest.mark.parametrize(("field", "body"), BAD_BODIES, ids=[f"{field}-{i}" for i, (field, _) in enumerate(BAD_BODIES)])
def test_a_bad_body_is_a_400_naming_its_field(server, feedback_run, field, body):
    before = len(stored(feedback_run))
    answer = post(server, body)
    assert answer.status == 400, answer.raw
    error = answer.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["type"] == "invalid_request_error", error
    assert error["param"] == field and error["message"].startswith(f"{field}:"), error
    assert PHONE_DIGITS not in answer.raw.decode().replace(" ", "") and CONTACT not in error["message"]
    assert len(stored(feedback_run)) == before


@pytest.mark.slow
def test_a_lone_surrogate_and_unparsable_json_are_400s(server):
    surrogate = post(server, '{"messages": [{"role": "user", "content": "hi"}], "reply": "ok", "correction": "\\ud800"}')
    assert surrogate.status == 400 and surrogate.json()["error"]["param"] == "correction", surrogate.raw
    broken = post(server, '{"messages": [')
    assert broken.status == 400 and broken.json()["error"]["param"] == "body", broken.raw


@pytest.mark.slow
@pytest.mark.slow
def test_a_chat_completion_can_say_it_is_a_group_chat_with_its_label(server, default_label):
    def prompt_tokens(**fields) -> int:
        body = {"messages": [{"role": "user", "content": "tonight?"}], "max_tokens": 1, "relationship": default_label,
                **fields}
        answer = call(server.url, "POST", "/v1/chat/completions", body, AUTH)
        assert answer.status == 200, answer.raw
        return answer.json()["usage"]["prompt_tokens"]

    # the prompt's header says "(group chat)" after the label: a longer prompt for the same messages
    assert prompt_tokens(group=True) > prompt_tokens(group=False) == prompt_tokens()
    refused = call(server.url, "POST", "/v1/chat/completions",
                   {"messages": [{"role": "user", "content": "hi"}], "group": "yes"}, AUTH)
    assert refused.status == 400 and refused.json()["error"]["param"] == "group"


def test_the_key_and_the_body_limit_apply(server, feedback_run):
    before = len(stored(feedback_run))
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        answer = post(server, GOOD, headers)
        assert answer.status == 401 and answer.json()["error"]["type"] == "invalid_api_key", answer.raw
    too_long = post(server, {**GOOD, "good": None, "correction": "x" * (MAX_BODY_KB * 1024)})
    assert too_long.status == 413 and "limit" in too_long.json()["error"]["message"], too_long.raw
    assert len(stored(feedback_run)) == before


@pytest.mark.slow
def test_feedback_never_reaches_another_response_or_the_server_output(server, feedback_run):
    assert_created(post(server, {"messages": CONVERSATION, "reply": f"ring {PHONE}", "correction": f"{CONTACT}? {SECRET}"}))
    assert any(SECRET in (entry.correction or "") for entry in stored(feedback_run).values())  # there to be found
    for path in ("/health", "/v1/models", "/", "/blind", "/blind/api/next", "/blind/api/score", "/static/chat.js",
                 "/v1/feedback", "/v1/feedback/1", "/feedback/feedback.sqlite", "/static/../feedback/feedback.sqlite"):
        text = call(server.url, "GET", path, headers=AUTH).raw.decode("utf-8", "replace")
        assert SECRET not in text and PHONE_DIGITS not in text.replace(" ", ""), path
    output = server.output()
    assert SECRET not in output and PHONE not in output and PHONE_DIGITS not in output and CONTACT not in output


# ---- durability: kill -9 mid-stream -----------------------------------------------------------------------------
ACKNOWLEDGED_BEFORE_KILL = 25


def body_number(number: int) -> dict:
    """The n-th body of the stream: texts no masking changes, so an entry is whole when it equals what was sent."""
    messages = [{"role": "user", "content": f"are we still on for take {number}?"}]
    return {"messages": messages, "reply": f"yes take {number}", "correction": f"of course, take {number} it is"}


def send_until_refused(url: str, acknowledged: dict[int, int], started: threading.Event) -> None:
    """POST bodies one after another, recording number -> id for each 201, until the server stops answering."""
    number = 0
    while True:
        try:
            answer = call(url, "POST", "/v1/feedback", body_number(number), timeout=30)
        except (OSError, http.client.HTTPException):
            return
        if answer.status == 201:
            acknowledged[number] = answer.json()["id"]
        if len(acknowledged) >= ACKNOWLEDGED_BEFORE_KILL:
            started.set()
        number += 1


@pytest.mark.slow
def test_killing_the_server_mid_stream_keeps_every_acknowledged_entry_whole(feedback_run, tmp_path):
    run = copy_of(feedback_run, tmp_path / "run")
    server = Server(run, tmp_path / "killed.log")
    acknowledged: dict[int, int] = {}
    started = threading.Event()
    sender = threading.Thread(target=send_until_refused, args=(server.url, acknowledged, started), daemon=True)
    try:
        sender.start()
        assert started.wait(timeout=300), "the server acknowledged too few entries"
        server.process.send_signal(signal.SIGKILL)
        server.process.wait(timeout=30)
        sender.join(timeout=60)
    finally:
        server.stop()
    assert not sender.is_alive()
    entries = stored(run)
    for number, entry_id in acknowledged.items():
        assert entry_id in entries, number
    for entry in entries.values():  # acknowledged or not, every entry there is one body, whole
        number = int(entry.reply.removeprefix("yes take "))
        sent = body_number(number)
        assert entry.context == [{"role": "them", "text": sent["messages"][0]["content"]}]
        assert (entry.reply, entry.correction) == (sent["reply"], sent["correction"])
    connection = sqlite3.connect(run / "feedback" / "feedback.sqlite")
    try:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    finally:
        connection.close()
