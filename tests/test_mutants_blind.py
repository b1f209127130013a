"""The blind test (replica/serve/blind.py) in process: pairs, pinned replica replies, guesses, limits, expiry and the
signed client cookie, on invented test examples and a stand-in generation engine (no model: the engine is not what is
tested here; tests/test_serve.py drives the same page against a real trained run). Every expected value is written
out here from the rules in the module's docstring."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace

import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient

from replica.evaluation.human import human_score, record_guess
from replica.model.run_dir import RunInfo
from replica.serve.blind import (
    BlindLimits,
    BlindTest,
    _addressee,
    _context,
    _cookie_key,
    _hour_ago,
    _one_per_visible_context,
    _other,
    blind_test_of_run,
)

NO_SCORE = {"guesses": 0, "spotted": 0, "rate": None, "ci95": [0.0, 1.0], "clients": 0}


class Engine:
    """A stand-in for the serving engine: `labels`, `job(...)` and an async `reply(job)` whose texts come from a script
    (an Exception in the script is raised instead)."""

    def __init__(self, texts=(), labels=(), delay: float = 0.0):
        self.labels = list(labels)
        self.delay = delay  # seconds a generation takes
        self.texts = list(texts)
        self.jobs: list[dict] = []

    def job(self, turns, *, relationship=None, group=None):
        job = {"turns": turns, "relationship": relationship, "group": group}
        self.jobs.append(job)
        return job

    async def reply(self, job):
        await asyncio.sleep(self.delay)  # let concurrent visitors interleave
        text = self.texts.pop(0) if self.texts else "replica says hi"
        if isinstance(text, Exception):
            raise text
        return SimpleNamespace(reply=SimpleNamespace(text=text))


def example(text: str, target: str, relationship: str | None = None, group: bool | None = None, **turn) -> dict:
    row = {"context": [{"role": "them", "text": text, **turn}], "target": target, "session": "s#1", "chat": "<NAME_1>"}
    if relationship is not None:
        row["relationship"] = relationship
    if group is not None:
        row["group"] = group
    return row


def run(coroutine):
    return asyncio.run(coroutine)


def blind(tmp_path: Path, examples: list[dict], **limits) -> BlindTest:
    return BlindTest(tmp_path, examples, limits=BlindLimits(**limits))


def real_and_fake(pair: dict, target: str) -> tuple[str, str]:
    """(position of the real reply, the other option's text) of a pair whose real reply is `target`."""
    real = [position for position, text in pair["options"].items() if text == target]
    assert len(real) == 1, pair
    fake = pair["options"]["b" if real[0] == "a" else "a"]
    return real[0], fake


# ---- the helpers ---------------------------------------------------------------------------------------------------
def test_context_shows_role_text_and_only_a_present_speaker():
    row = {"context": [
        {"role": "them", "text": "ciao", "speaker": "contact_1", "time": "2024-01-01T10:00:00"},
        {"role": "me", "text": "ehi", "speaker": ""},
        {"role": "them", "text": "come va?"},
    ]}
    assert _context(row) == [
        {"role": "them", "text": "ciao", "speaker": "contact_1"},
        {"role": "me", "text": "ehi"},
        {"role": "them", "text": "come va?"},
    ]


def test_one_example_per_visible_context():
    rows = [
        example("pizza?", "sì", "family", False),        # 0
        example("cinema?", "no", "friend", False),       # 1
        example("pizza?", "dopo", "family", False),      # 2 same as 0 everywhere
        example("pizza?", "forse", "friend", False),     # 3 same turns, other label
        example("pizza?", "ok", "family", True),         # 4 same turns and label, a group
        example("cinema?", "boh", "friend"),             # 5 as 1: no group flag reads as not a group
        example("pizza?", "mai", "family", False, time="10:00"),  # 6 as 0: the turn's time is not shown
    ]
    assert _one_per_visible_context(rows, labelled=False) == [0, 1]
    assert _one_per_visible_context(rows, labelled=True) == [0, 1, 3, 4]
    assert _one_per_visible_context([], labelled=True) == []


def test_a_blind_test_shows_labels_apart_only_when_its_prompts_name_them(tmp_path):
    rows = [example("pizza?", "sì", "family"), example("pizza?", "no", "friend"), example("pizza?", "ok", "family")]
    assert BlindTest(tmp_path, rows).pool == [0]
    assert BlindTest(tmp_path, rows, labelled=False).pool == [0]
    assert BlindTest(tmp_path, rows, labelled=True).pool == [0, 1]


def test_speakers_tell_group_contexts_apart():
    rows = [example("pizza?", "sì", speaker="contact_1"), example("pizza?", "no", speaker="contact_2"),
            example("pizza?", "ok", speaker="contact_1")]
    assert _one_per_visible_context(rows, labelled=False) == [0, 1]


def test_addressee_is_the_label_only_when_the_run_has_labels():
    labelled = Engine(labels=["family", "friend"])
    assert _addressee(labelled, example("x", "y", "friend", True)) == ("friend", True)
    assert _addressee(labelled, example("x", "y", "friend")) == ("friend", False)
    assert _addressee(labelled, example("x", "y")) == (None, False)
    assert _addressee(labelled, example("x", "y", "", True)) == (None, False)
    assert _addressee(Engine(), example("x", "y", "friend", True)) == (None, False)


def test_other_position():
    assert _other("a") == "b"
    assert _other("b") == "a"


def test_hour_ago_is_an_utc_iso_time_to_the_second():
    text = _hour_ago()
    parsed = datetime.fromisoformat(text)
    assert parsed.utcoffset() == timedelta(0)
    assert parsed.microsecond == 0 and "." not in text
    assert timedelta(minutes=59, seconds=58) <= datetime.now(timezone.utc) - parsed <= timedelta(hours=1, seconds=2)


def test_cookie_key_is_created_once_owner_only_and_reused(tmp_path):
    path = tmp_path / "new" / "folder" / "client.key"
    key = _cookie_key(path)
    assert len(key) == 32 and path.read_bytes() == key
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert _cookie_key(path) == key
    other = tmp_path / "other.key"
    other.write_bytes(b"k" * 32)
    assert _cookie_key(other) == b"k" * 32
    assert _cookie_key(tmp_path / "third.key") != key  # random per run


def test_a_run_gets_its_key_next_to_the_guesses_and_keeps_it_across_restarts(tmp_path):
    first = BlindTest(tmp_path, [example("x", "y")])
    assert first.key == (tmp_path / "blind" / "client.key").read_bytes() and len(first.key) == 32
    assert BlindTest(tmp_path, [example("x", "y")]).key == first.key


def test_an_unavailable_test_writes_no_key(tmp_path):
    assert BlindTest(tmp_path, [], "no dataset").key == b""
    assert BlindTest(None, []).key == b""
    assert not (tmp_path / "blind").exists()


def test_score_before_any_guess_and_after(tmp_path):
    assert BlindTest(tmp_path, [example("x", "y")]).score() == NO_SCORE
    assert BlindTest(None, [], "merged").score() == NO_SCORE
    record_guess(tmp_path, 0, "a", "a", client="c1")
    record_guess(tmp_path, 0, "b", "a", client="c2")
    score = BlindTest(tmp_path, [example("x", "y")]).score()
    assert (score["guesses"], score["spotted"], score["rate"], score["clients"]) == (2, 1, 0.5, 2)


# ---- pairs and guesses -----------------------------------------------------------------------------------------------
def test_a_pair_holds_the_real_reply_and_one_replica_reply(tmp_path):
    engine = Engine(["replica reply"])
    test = blind(tmp_path, [example("pizza stasera?", "sì dai", speaker="contact_2")])
    pair = run(test.next_pair(engine, "c1"))
    assert pair["context"] == [{"role": "them", "text": "pizza stasera?", "speaker": "contact_2"}]
    assert set(pair["options"]) == {"a", "b"}
    assert sorted(pair["options"].values()) == ["replica reply", "sì dai"]
    assert (pair["relationship"], pair["group"]) == (None, False)
    assert pair["score"] == NO_SCORE
    assert engine.jobs == [{"turns": pair["context"], "relationship": None, "group": False}]


def test_a_labelled_pair_names_its_label_and_the_replica_writes_to_it(tmp_path):
    engine = Engine(["fake"], labels=["family", "friend"])
    pair = run(blind(tmp_path, [example("cena?", "arrivo", "friend", True)]).next_pair(engine, "c1"))
    assert (pair["relationship"], pair["group"]) == ("friend", True)
    assert engine.jobs[0]["relationship"] == "friend" and engine.jobs[0]["group"] is True


def test_asking_again_returns_the_same_open_pair(tmp_path):
    engine = Engine(["one", "two", "three"])
    test = blind(tmp_path, [example(f"msg {i}", f"real {i}") for i in range(5)])
    first = run(test.next_pair(engine, "c1"))
    again = run(test.next_pair(engine, "c1"))
    assert again["options"] == first["options"] and again["context"] == first["context"]
    assert len(engine.jobs) == 1


def test_the_replica_reply_of_a_context_is_generated_once_and_shown_to_everyone(tmp_path):
    engine = Engine(["pinned", "other"], delay=0.05)
    test = blind(tmp_path, [example("pizza?", "sì")])

    async def three_visitors():
        return await asyncio.gather(*(test.next_pair(engine, client) for client in ("c1", "c2", "c3")))

    pairs = run(three_visitors())
    assert [real_and_fake(pair, "sì")[1] for pair in pairs] == ["pinned"] * 3
    assert len(engine.jobs) == 1
    run(test.guess("c1", "a"))
    later = run(test.next_pair(engine, "c4"))
    assert real_and_fake(later, "sì")[1] == "pinned" and len(engine.jobs) == 1


def test_an_empty_replica_reply_is_sampled_again_at_most_three_times(tmp_path):
    engine = Engine(["", "", "third time"])
    pair = run(blind(tmp_path, [example("x", "real")]).next_pair(engine, "c1"))
    assert real_and_fake(pair, "real")[1] == "third time" and len(engine.jobs) == 3

    engine = Engine(["", "", "", "fourth"])
    pair = run(blind(tmp_path, [example("x", "real")]).next_pair(engine, "c1"))
    assert real_and_fake(pair, "real")[1] == "" and len(engine.jobs) == 3

    engine = Engine(["first", "second"])
    pair = run(blind(tmp_path, [example("x", "real")]).next_pair(engine, "c1"))
    assert real_and_fake(pair, "real")[1] == "first" and len(engine.jobs) == 1


def test_a_failed_generation_is_not_pinned(tmp_path):
    engine = Engine([RuntimeError("out of memory"), "works now"])
    test = blind(tmp_path, [example("x", "real")])
    with pytest.raises(RuntimeError):
        run(test.next_pair(engine, "c1"))
    assert test.open == {}
    pair = run(test.next_pair(engine, "c1"))
    assert real_and_fake(pair, "real")[1] == "works now"


def test_visitors_sharing_a_failed_generation_all_see_its_error(tmp_path):
    engine = Engine([RuntimeError("out of memory"), "works now"], delay=0.05)
    test = blind(tmp_path, [example("x", "real")])

    async def two_visitors():
        return await asyncio.gather(*(test.next_pair(engine, client) for client in ("c1", "c2")), return_exceptions=True)

    first, second = run(two_visitors())
    assert isinstance(first, RuntimeError) and isinstance(second, RuntimeError)
    assert len(engine.jobs) == 1
    assert real_and_fake(run(test.next_pair(engine, "c3")), "real")[1] == "works now"


def test_a_guess_reveals_the_answer_and_is_stored_once(tmp_path):
    test = blind(tmp_path, [example("pizza?", "sì")])
    pair = run(test.next_pair(Engine(["fake"]), "c1"))
    real, _ = real_and_fake(pair, "sì")
    verdict = run(test.guess("c1", real))
    assert verdict["correct"] is True and verdict["real"] == real
    assert (verdict["score"]["guesses"], verdict["score"]["spotted"], verdict["score"]["clients"]) == (1, 1, 1)
    assert run(test.guess("c1", real)) is None  # already answered
    assert human_score(tmp_path)["guesses"] == 1


def test_a_wrong_guess_is_reported_wrong(tmp_path):
    test = blind(tmp_path, [example("pizza?", "sì")])
    real, _ = real_and_fake(run(test.next_pair(Engine(["fake"]), "c1")), "sì")
    wrong = _other(real)
    verdict = run(test.guess("c1", wrong))
    assert verdict["correct"] is False and verdict["real"] == real
    assert (verdict["score"]["guesses"], verdict["score"]["spotted"]) == (1, 0)


def test_a_guess_without_an_open_pair_is_none(tmp_path):
    test = blind(tmp_path, [example("pizza?", "sì")])
    run(test.next_pair(Engine(["fake"]), "c1"))
    assert run(test.guess("c2", "a")) is None
    assert human_score(tmp_path) is None


def test_a_client_never_gets_a_context_it_has_guessed_and_is_told_when_done(tmp_path):
    rows = [example("uno", "real 1"), example("due", "real 2"), example("uno", "dup of 1")]
    test = blind(tmp_path, rows)
    engine = Engine()
    shown = []
    for _ in range(2):
        pair = run(test.next_pair(engine, "c1"))
        shown.append(pair["context"][0]["text"])
        assert run(test.guess("c1", "a")) is not None
    assert sorted(shown) == ["due", "uno"]
    done = run(test.next_pair(engine, "c1"))
    assert isinstance(done, JSONResponse) and done.status_code == 404
    assert json.loads(done.body)["error"]["type"] == "blind_test_done"
    assert json.loads(done.body)["error"]["message"]
    assert isinstance(run(test.next_pair(engine, "c2")), dict)  # another client still has both


def test_guesses_per_hour_are_capped_per_client(tmp_path):
    test = blind(tmp_path, [example(f"msg {i}", f"real {i}") for i in range(4)], guesses_per_hour=2)
    engine = Engine()
    run(test.next_pair(engine, "c1"))
    run(test.guess("c1", "a"))
    assert isinstance(run(test.next_pair(engine, "c1")), dict)  # one guess of two: still allowed
    run(test.guess("c1", "b"))
    capped = run(test.next_pair(engine, "c1"))
    assert isinstance(capped, JSONResponse) and capped.status_code == 429
    assert capped.headers["retry-after"] == "600"
    assert json.loads(capped.body)["error"]["type"] == "rate_limit_exceeded"
    assert "2 guesses per hour" in json.loads(capped.body)["error"]["message"]
    assert isinstance(run(test.next_pair(engine, "c2")), dict)  # per client


def test_guesses_older_than_an_hour_do_not_count(tmp_path):
    import sqlite3

    test = blind(tmp_path, [example(f"msg {i}", f"real {i}") for i in range(4)], guesses_per_hour=1)
    record_guess(tmp_path, 3, "a", "a", client="c1")
    connection = sqlite3.connect(tmp_path / "blind" / "guesses.sqlite")
    with connection:
        connection.execute("UPDATE guesses SET time = ?", ((datetime.now(timezone.utc) - timedelta(hours=2)).isoformat(timespec="seconds"),))
    connection.close()
    pair = run(test.next_pair(Engine(), "c1"))
    assert isinstance(pair, dict) and pair["context"][0]["text"] != "msg 3"  # guessed, but not within the hour


def test_open_pairs_are_never_evicted_by_other_clients(tmp_path):
    test = blind(tmp_path, [example(f"msg {i}", f"real {i}") for i in range(4)], max_open_pairs=1)
    engine = Engine()
    first = run(test.next_pair(engine, "c1"))
    refused = run(test.next_pair(engine, "c2"))
    assert isinstance(refused, JSONResponse) and refused.status_code == 429
    assert refused.headers["retry-after"] == "60"
    error = json.loads(refused.body)["error"]
    assert error["type"] == "rate_limit_exceeded" and error["message"]
    assert run(test.next_pair(engine, "c1"))["options"] == first["options"]  # its own pair is still there
    assert run(test.guess("c1", "a")) is not None
    assert isinstance(run(test.next_pair(engine, "c2")), dict)


def test_an_open_pair_expires(tmp_path):
    test = blind(tmp_path, [example(f"msg {i}", f"real {i}") for i in range(4)], max_open_pairs=1, open_pair_ttl_s=0.05)
    engine = Engine()
    run(test.next_pair(engine, "c1"))
    time.sleep(0.1)
    assert isinstance(run(test.next_pair(engine, "c2")), dict)  # c1's pair expired and freed its place
    time.sleep(0.1)
    assert run(test.guess("c2", "a")) is None
    assert human_score(tmp_path) is None


def test_an_open_pair_within_its_time_can_be_answered(tmp_path):
    test = blind(tmp_path, [example("msg", "real")], open_pair_ttl_s=60)
    run(test.next_pair(Engine(), "c1"))
    time.sleep(0.05)
    assert run(test.guess("c1", "a")) is not None


# ---- the routes and the signed cookie -------------------------------------------------------------------------------
def client_for(test: BlindTest, engine: Engine | None = None) -> TestClient:
    app = FastAPI()
    test.add_routes(app, engine or Engine())
    return TestClient(app)


def test_a_new_browser_gets_a_signed_cookie_once(tmp_path):
    test = blind(tmp_path, [example(f"msg {i}", f"real {i}") for i in range(3)])
    browser = client_for(test)
    first = browser.get("/blind/api/next")
    assert first.status_code == 200
    cookie = first.headers["set-cookie"]
    assert cookie.startswith("replica_blind=")
    attributes = {part.strip().split("=")[0].lower(): part.strip().partition("=")[2] for part in cookie.split(";")[1:]}
    assert attributes["path"] == "/blind" and "httponly" in attributes and attributes["samesite"].lower() == "strict"
    assert attributes["max-age"] == str(365 * 24 * 3600)
    again = browser.get("/blind/api/next")
    assert "set-cookie" not in again.headers
    assert again.json()["options"] == first.json()["options"]  # the same client, the same open pair
    guess = browser.post("/blind/api/guess", json={"choice": "a"})
    assert guess.status_code == 200 and guess.json()["real"] in ("a", "b")
    assert browser.get("/blind/api/score").json()["guesses"] == 1


def test_a_cookie_survives_a_restart_of_the_same_run(tmp_path):
    rows = [example(f"msg {i}", f"real {i}") for i in range(3)]
    browser = client_for(blind(tmp_path, rows))
    client = browser.get("/blind/api/next").headers["set-cookie"].split(";")[0].split("=", 1)[1].split(".")[0]
    restarted = client_for(blind(tmp_path, rows))
    restarted.cookies.set("replica_blind", browser.cookies.get("replica_blind"))
    assert "set-cookie" not in restarted.get("/blind/api/next").headers
    assert restarted.cookies.get("replica_blind").split(".")[0] == client


def test_a_forged_or_foreign_cookie_is_a_new_client(tmp_path):
    rows = [example(f"msg {i}", f"real {i}") for i in range(3)]
    test = blind(tmp_path / "run", rows)
    genuine = client_for(test)
    genuine.get("/blind/api/next")
    value = genuine.cookies.get("replica_blind")
    client, _, signature = value.partition(".")
    other_run = blind(tmp_path / "other", rows)
    for forged in (f"someoneelse.{signature}", f"{client}.{'0' * 32}", client, f".{test._sign('')}", value):
        browser = client_for(other_run if forged == value else test)
        browser.cookies.set("replica_blind", forged)
        response = browser.get("/blind/api/next")
        assert response.status_code == 200
        new = response.headers["set-cookie"].split(";")[0].split("=", 1)[1].partition(".")[0]
        assert new and new not in (client, "someoneelse"), forged


def test_client_of_reads_the_cookie(tmp_path):
    test = blind(tmp_path, [example("x", "y")])
    cookie = f"me123.{test._sign('me123')}"
    request = SimpleNamespace(cookies={"replica_blind": cookie})
    assert test.client_of(request) == ("me123", False)
    dotted = SimpleNamespace(cookies={"replica_blind": f"me.123.{test._sign('me.123')}"})  # ids never hold a dot
    assert test.client_of(dotted)[1] is True
    client, new = test.client_of(SimpleNamespace(cookies={}))
    assert new is True and len(client) >= 16
    assert test.client_of(SimpleNamespace(cookies={}))[0] != client


def test_a_guess_without_an_open_pair_is_a_conflict_and_a_bad_choice_is_refused(tmp_path):
    browser = client_for(blind(tmp_path, [example("x", "y")]))
    response = browser.post("/blind/api/guess", json={"choice": "a"})
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["param"] == "choice" and error["type"] == "invalid_request_error"
    browser.get("/blind/api/next")
    assert browser.post("/blind/api/guess", json={"choice": "c"}).status_code == 422
    assert browser.post("/blind/api/guess", json={"choice": "a", "extra": 1}).status_code == 422
    assert browser.post("/blind/api/guess", json={"choice": "a"}).status_code == 200


def test_an_unavailable_blind_test_says_why(tmp_path):
    browser = client_for(BlindTest(None, [], "a merged model carries no dataset"))
    for response in (browser.get("/blind/api/next"), browser.post("/blind/api/guess", json={"choice": "a"})):
        assert response.status_code == 404
        error = response.json()["error"]
        assert error["message"] == "a merged model carries no dataset" and error["type"] == "blind_test_unavailable"
    assert browser.get("/blind/api/score").json() == NO_SCORE


def test_the_blind_page_is_served(tmp_path):
    response = client_for(blind(tmp_path, [example("x", "y")])).get("/blind")
    assert response.status_code == 200 and "text/html" in response.headers["content-type"]


# ---- a run's blind test --------------------------------------------------------------------------------------------
def test_a_merged_folder_has_no_blind_test():
    limits = BlindLimits(guesses_per_hour=5)
    test = blind_test_of_run(None, limits)
    assert test.unavailable and "serve the run folder" in test.unavailable
    assert test.run_dir is None and test.examples == [] and test.pool == [] and test.limits is limits


def test_a_run_without_its_dataset_record_explains_why(tmp_path):
    limits = BlindLimits(max_open_pairs=7)
    test = blind_test_of_run(RunInfo(tmp_path, tmp_path, {}), limits, labelled=True)
    assert test.unavailable.startswith("the run's test split is unavailable (") and "dataset.json" in test.unavailable
    assert test.run_dir == tmp_path and test.examples == [] and test.limits is limits
    assert not (tmp_path / "blind").exists()


def whatsapp_exports(folder: Path) -> Path:
    """Two invented WhatsApp chats, Mum (family) and Jake (friend), where every day opens with the same question."""
    folder.mkdir(parents=True)
    for name, reply in (("Mum", "Fine thanks x"), ("Jake Miller", "all good mate")):
        lines = []
        for day in range(1, 29):
            lines += [f"{day:02d}/02/2024, 10:00 - {name}: How are you?", f"{day:02d}/02/2024, 10:02 - Sam Rivera: {reply} {day}"]
        (folder / f"WhatsApp Chat with {name}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def prepare_run(root: Path) -> Path:
    """A run folder recording a real prepared dataset of those chats (no training: the blind test reads data only)."""
    from replica.prepare.store import RUN_RECORD
    from replica.training.inputs import prepare_run_dataset
    from tests.helpers import tiny_cfg

    exports = whatsapp_exports(root / "exports")
    cfg = tiny_cfg(root, [f"data.exports=[{exports}]", "data.me=['Sam Rivera']",
                          "data.relationships={Mum: family, 'Jake Miller': friend}"])
    run_dir = Path(cfg.paths.output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    prepare_run_dataset(cfg.data, run_dir / RUN_RECORD)
    return run_dir


def test_split_rows(run_dir: Path) -> list[dict]:
    from replica.prepare.store import read_run_record

    test_file = Path(read_run_record(run_dir)["dir"]) / "test.jsonl"
    return [json.loads(line) for line in test_file.read_text(encoding="utf-8").splitlines() if line.strip()]


test_split_rows.__test__ = False


@pytest.fixture(scope="module")
def prepared_run(tmp_path_factory) -> Path:
    return prepare_run(tmp_path_factory.mktemp("blind-run"))


def test_a_runs_blind_test_is_its_test_split(prepared_run):
    limits = BlindLimits(guesses_per_hour=9)
    rows = test_split_rows(prepared_run)
    labels = {row["relationship"] for row in rows}
    assert labels == {"family", "friend"}  # the test split holds the question asked by both
    test = blind_test_of_run(RunInfo(prepared_run, prepared_run, {}), limits, labelled=True)
    assert test.unavailable is None and test.run_dir == prepared_run and test.limits is limits
    assert test.examples == rows
    assert len(test.key) == 32
    assert len(test.pool) == 2  # one context, shown once per label
    assert {rows[index]["relationship"] for index in test.pool} == labels
    unlabelled = blind_test_of_run(RunInfo(prepared_run, prepared_run, {}), limits)
    assert unlabelled.pool == [0]  # one context: one pair


def test_a_runs_gone_dataset_is_rebuilt_for_the_blind_test(tmp_path, capsys, caplog):
    import shutil

    from replica.prepare.store import read_run_record

    run_dir = prepare_run(tmp_path)
    rows = test_split_rows(run_dir)
    shutil.rmtree(read_run_record(run_dir)["dir"])
    capsys.readouterr()
    with caplog.at_level("INFO"):
        test = blind_test_of_run(RunInfo(run_dir, run_dir, {}), BlindLimits())
    assert test.unavailable is None and test.examples == rows
    assert "rebuilding" in caplog.text
    assert capsys.readouterr().out == ""  # the server's log, not its stdout
