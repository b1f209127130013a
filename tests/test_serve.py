"""`replica serve` as a user and an attacker meet it: a real server process on a free localhost port, driven by the
official `openai` client, raw HTTP and a real headless Chromium (web chat, blind test), on a real tiny trained run."""

from __future__ import annotations

import json
import shutil
import signal
import sqlite3
import subprocess
import sys
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.helpers import assert_one_line_error, train_tiny
from tests.serve_helpers import MARKERS, ROOT, Server, replica_cli

KEY = "test-key-5f1c9a"
SECRET = "SEGRETISSIMO-42"  # a message text that must never reach the server's output
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run",
]
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium installed (apt-get install -y chromium); .ci/run installs it")


# ---- refusals that need no model -------------------------------------------------------------------------
@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "::", "my-laptop.example"])
def test_non_loopback_host_without_key_is_refused(tmp_path, host):
    result = replica_cli("serve", tmp_path, "--host", host, timeout=120)
    assert_one_line_error(result, "replica: error:", "--api-key", host)


def test_empty_api_key_is_refused(tmp_path):
    assert_one_line_error(replica_cli("serve", tmp_path, "--api-key", "  ", timeout=120), "replica: error:", "--api-key")


def test_missing_model_dir_is_one_line_error(tmp_path):
    assert_one_line_error(replica_cli("serve", tmp_path / "nope", timeout=120), "replica: error:", "nope")


# ---- a real server -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    _, run = train_tiny(tmp_path_factory.mktemp("serve"))
    return run


@pytest.fixture(scope="module")
def server(run_dir, tmp_path_factory):
    process = Server(run_dir, tmp_path_factory.mktemp("serve-log") / "server.log", "--api-key", KEY)
    yield process
    process.stop()


@pytest.fixture
def client(server):
    from openai import OpenAI

    return OpenAI(base_url=f"{server.url}/v1", api_key=KEY, max_retries=0, timeout=300)


def assert_clean(text: str) -> None:
    assert not any(marker in text for marker in MARKERS), text
    assert not text.lstrip().startswith(("A:", "B:")), text


def http(server, path: str, body: bytes | None = None, headers: dict | None = None, method: str | None = None):
    """(status, parsed JSON body) of one raw request."""
    request = urllib.request.Request(f"{server.url}{path}", data=body, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=300) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"null")


AUTH = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}


@pytest.mark.slow
def test_models_and_health(server, client):
    assert [model.id for model in client.models.list().data] == ["replica"]
    assert http(server, "/health") == (200, {"status": "ok"})  # no key needed


@pytest.mark.slow
def test_non_streaming_completion_with_usage(client):
    messages = [
        {"role": "system", "content": "You are a pirate."},  # accepted and ignored
        {"role": "user", "content": "ciao, stasera ci sei?"},
    ]
    first = client.chat.completions.create(model="replica", messages=messages, max_tokens=16, seed=7, temperature=0.9)
    again = client.chat.completions.create(model="replica", messages=messages, max_tokens=16, seed=7, temperature=0.9)
    choice = first.choices[0]
    assert choice.message.role == "assistant" and isinstance(choice.message.content, str)
    assert_clean(choice.message.content)
    assert choice.finish_reason in ("stop", "length")
    assert first.usage.prompt_tokens > 0 and 1 <= first.usage.completion_tokens <= 16
    assert first.usage.total_tokens == first.usage.prompt_tokens + first.usage.completion_tokens
    assert again.choices[0].message.content == choice.message.content  # same seed, same reply


@pytest.mark.slow
def test_streaming_matches_its_final_text(client):
    stream = client.chat.completions.create(
        model="replica",
        messages=[{"role": "user", "content": "hey, what's up?"}, {"role": "assistant", "content": "not much"}, {"role": "user", "content": "pizza?"}],
        max_tokens=24,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    pieces = [c.choices[0].delta.content or "" for c in chunks if c.choices]
    reasons = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert reasons in (["stop"], ["length"])
    text = "".join(pieces)
    assert_clean(text)
    usage = chunks[-1].usage
    assert usage is not None and 1 <= usage.completion_tokens <= 24


@pytest.mark.slow
def test_eight_concurrent_clients_all_get_replies(client):
    def ask(index: int):
        return client.chat.completions.create(
            model="replica", messages=[{"role": "user", "content": f"ciao numero {index}"}], max_tokens=12, seed=index
        )

    with ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(ask, range(8)))
    assert len(replies) == 8
    for reply in replies:
        assert_clean(reply.choices[0].message.content)
        assert 1 <= reply.usage.completion_tokens <= 12


@pytest.mark.slow
def test_stop_strings_never_appear_in_the_reply(client):
    for seed in range(3):
        reply = client.chat.completions.create(
            model="replica", messages=[{"role": "user", "content": "dimmi tutto"}], max_tokens=32, seed=seed, stop=["a", "o"]
        )
        content = reply.choices[0].message.content
        assert "a" not in content and "o" not in content, content


@pytest.mark.slow
def test_wrong_or_missing_key_is_401(server):
    from openai import AuthenticationError, OpenAI

    wrong = OpenAI(base_url=f"{server.url}/v1", api_key="not-the-key", max_retries=0)
    with pytest.raises(AuthenticationError):
        wrong.chat.completions.create(model="replica", messages=[{"role": "user", "content": "ciao"}])
    for path in ("/v1/models", "/", "/blind", "/blind/api/next", "/static/chat.js"):
        status, _ = http(server, path)
        assert status == 401, path


@pytest.mark.slow
def test_limits_and_validation_errors_never_echo_the_conversation(server, client):
    from openai import BadRequestError

    with pytest.raises(BadRequestError):
        client.chat.completions.create(model="replica", messages=[{"role": "user", "content": "ciao"}], max_tokens=100_000)
    with pytest.raises(BadRequestError):
        client.chat.completions.create(model="replica", messages=[{"role": "user", "content": "ciao"}], n=2)
    status, body = http(server, "/v1/chat/completions", json.dumps({"messages": [{"role": "pirate", "content": SECRET}]}).encode(), AUTH)
    assert status == 400 and SECRET not in json.dumps(body)
    status, _ = http(server, "/v1/chat/completions", b"{" + b" " * 400_000 + b"}", AUTH)
    assert status == 413
    status, _ = http(server, "/v1/chat/completions", b"{not json", AUTH)
    assert status == 400


@pytest.mark.slow
def test_client_leaving_mid_stream_does_not_break_the_server_and_nothing_is_logged(server, client):
    import httpx

    body = {"messages": [{"role": "user", "content": SECRET}], "max_tokens": 512, "stream": True, "temperature": 1.5}
    with httpx.stream("POST", f"{server.url}/v1/chat/completions", json=body, headers=AUTH, timeout=300) as response:
        assert response.status_code == 200
        next(response.iter_lines())  # the first event arrived; now hang up
    reply = client.chat.completions.create(model="replica", messages=[{"role": "user", "content": SECRET}], max_tokens=8)
    assert reply.choices[0].message.content is not None
    assert SECRET not in server.output()


@pytest.mark.slow
def test_cancelled_job_stops_its_row_at_once(run_dir):
    from replica.inference.generation import Job, Sampling, generate_jobs
    from replica.inference.loading import load_run

    model, formatter, _ = load_run(run_dir)
    steps = {"seen": 0}

    def cancelled() -> bool:
        steps["seen"] += 1
        return steps["seen"] > 3

    context = [{"role": "them", "text": "ciao"}]
    never = Sampling(max_new_tokens=200, do_sample=True, temperature=1.5, seed=1)
    leaving, staying = generate_jobs(
        model, formatter, [Job(context, never, cancelled=cancelled), Job(context, Sampling(max_new_tokens=6))]
    )
    assert leaving.finish_reason in ("cancelled", "stop") and len(leaving.token_ids) <= 4
    assert len(staying.token_ids) <= 6


# ---- blind test: storage survives a killed server ---------------------------------------------------------
def count_guesses(run_dir: Path) -> tuple[str, int]:
    connection = sqlite3.connect(run_dir / "blind" / "guesses.sqlite")
    try:
        return connection.execute("PRAGMA integrity_check").fetchone()[0], connection.execute("SELECT COUNT(*) FROM guesses").fetchone()[0]
    finally:
        connection.close()


@pytest.mark.slow
def test_killing_the_server_mid_stream_loses_no_stored_guess(run_dir, tmp_path):
    import httpx

    target = tmp_path / "run"
    shutil.copytree(run_dir, target)
    server = Server(target, tmp_path / "killed.log")
    try:
        for _ in range(2):
            status, pair = http(server, "/blind/api/next")
            assert status == 200 and set(pair["options"]) == {"a", "b"}
            status, verdict = http(server, "/blind/api/guess", json.dumps({"token": pair["token"], "choice": "a"}).encode(), {"Content-Type": "application/json"})
            assert status == 200 and verdict["real"] in ("a", "b")
        status, _ = http(server, "/blind/api/guess", json.dumps({"token": pair["token"], "choice": "b"}).encode(), {"Content-Type": "application/json"})
        assert status == 409  # a pair is answered once
        body = {"messages": [{"role": "user", "content": "ciao"}], "max_tokens": 512, "stream": True, "temperature": 1.5}
        with httpx.stream("POST", f"{server.url}/v1/chat/completions", json=body, timeout=300) as response:
            next(response.iter_lines())
            server.process.send_signal(signal.SIGKILL)
            server.process.wait(timeout=30)
    finally:
        server.stop()
    assert count_guesses(target) == ("ok", 2)


# ---- the web pages in a real headless Chromium -------------------------------------------------------------
@pytest.fixture
def page(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(http_credentials={"username": "friend", "password": KEY}, viewport={"width": 1000, "height": 700})
        try:
            yield context.new_page()
        finally:
            context.close()
            browser.close()


@pytest.mark.slow
@needs_chromium
def test_web_chat_streams_a_reply_and_starts_over(server, page):
    page.goto(server.url + "/")
    page.get_by_text("Sampling settings").click()
    page.get_by_test_id("max-tokens").fill("16")
    page.get_by_test_id("message-input").fill("ciao, stasera ci sei?")
    page.get_by_test_id("send").click()
    reply = page.get_by_test_id("reply").first
    page.wait_for_selector('[data-testid="reply"][data-state="done"]', timeout=300_000)
    assert_clean(reply.inner_text())
    page.get_by_test_id("message-input").fill("e domani?")
    page.get_by_test_id("send").click()
    page.wait_for_function("document.querySelectorAll('[data-testid=reply][data-state=done]').length == 2", timeout=300_000)
    page.get_by_test_id("new-conversation").click()
    assert page.get_by_test_id("reply").count() == 0


@pytest.mark.slow
@needs_chromium
def test_blind_guess_in_the_browser_is_stored_and_reported(server, run_dir, page):
    page.goto(server.url + "/blind")
    option = page.get_by_test_id("option-a")
    option.wait_for(state="visible")
    page.wait_for_function("!document.querySelector('[data-testid=option-a]').disabled", timeout=300_000)
    texts = [page.get_by_test_id(f"option-{key}").inner_text() for key in "ab"]
    assert all(not any(marker in text for marker in MARKERS) for text in texts)
    before = count_guesses(run_dir)[1] if (run_dir / "blind" / "guesses.sqlite").exists() else 0
    option.click()
    page.wait_for_function("document.querySelector('[data-testid=score]').textContent.includes('of')", timeout=60_000)
    score = page.get_by_test_id("score").inner_text()
    assert f"of {before + 1} times" in score and "95% interval" in score
    assert count_guesses(run_dir) == ("ok", before + 1)

    done = subprocess.run(
        [sys.executable, "evaluate.py", f"run_dir={run_dir}", "eval.max_examples=4"],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((run_dir / "eval" / "metrics.json").read_text())
    assert metrics["human"]["guesses"] == before + 1
    low, high = metrics["human"]["ci95"]
    assert 0 <= low <= metrics["human"]["rate"] <= high <= 1
    assert "Blind test" in (run_dir / "eval" / "report.md").read_text()
