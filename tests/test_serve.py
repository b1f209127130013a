"""`replica serve` as a user and an attacker meet it: a real server process on a free localhost port, driven by the
official `openai` client, raw HTTP and a real headless Chromium (web chat, blind test), on a real tiny trained run."""

from __future__ import annotations

import base64
import json
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.helpers import FAST_OVERRIDES, assert_one_line_error, train_tiny
from tests.serve_helpers import MARKERS, ROOT, Server, call, long_seed, replica_cli

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
READ_TIMEOUT_S = 2
MAX_CONNECTIONS = 16
DEFAULT_MAX_TOKENS = 10
MAX_TOKENS_LIMIT = 300
MAX_BODY_KB = 64
GUESSES_PER_HOUR = 3
ALLOWED_HOST = "replica.test"
SERVER_OPTIONS = (
    "--api-key", KEY, "--allowed-host", ALLOWED_HOST, "--read-timeout", str(READ_TIMEOUT_S),
    "--max-connections", str(MAX_CONNECTIONS), "--max-tokens", str(DEFAULT_MAX_TOKENS),
    "--max-tokens-limit", str(MAX_TOKENS_LIMIT), "--max-body-kb", str(MAX_BODY_KB),
    "--blind-guesses-per-hour", str(GUESSES_PER_HOUR),
)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    _, run = train_tiny(tmp_path_factory.mktemp("serve"))
    return run


ENGINES = ("llama_cpp", "transformers")  # every server test runs against both generation engines


@pytest.fixture(scope="module", params=ENGINES)
def engine(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def server(run_dir, engine, tmp_path_factory):
    process = Server(run_dir, tmp_path_factory.mktemp("serve-log") / "server.log", *SERVER_OPTIONS, "--engine", engine)
    assert f"generating with {engine}" in process.output()
    yield process
    process.stop()


@pytest.fixture
def client(server):
    from openai import OpenAI

    return OpenAI(base_url=f"{server.url}/v1", api_key=KEY, max_retries=0, timeout=300)


@pytest.fixture(scope="module")
def seed_to_length(server) -> int:
    """A seed whose temperature-2 reply runs to the server's max_tokens limit."""
    return long_seed(server.url, AUTH, MAX_TOKENS_LIMIT)


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


def assert_error_object(answer, status: int, *fragments: str, param: str | None = None) -> None:
    """An OpenAI error object: {"error": {"message", "type", "param", "code"}}."""
    assert answer.status == status, answer.raw
    error = answer.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"], error
    for fragment in fragments:
        assert fragment in error["message"], error
    if param is not None:
        assert error["param"] == param, error


AUTH = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}


def chat(server, body: dict, headers: dict = AUTH):
    return call(server.url, "POST", "/v1/chat/completions", body, headers)


def reply_text(answer) -> str:
    assert answer.status == 200, answer.raw
    return answer.json()["choices"][0]["message"]["content"]


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
def test_streaming_matches_the_same_seeded_reply(client, seed_to_length):
    messages = [{"role": "user", "content": "hey, what's up?"}, {"role": "assistant", "content": "not much"}, {"role": "user", "content": "pizza?"}]
    settings = {"model": "replica", "messages": messages, "max_tokens": 24, "temperature": 2.0, "seed": seed_to_length}
    expected = client.chat.completions.create(**settings)
    chunks = list(client.chat.completions.create(**settings, stream=True, stream_options={"include_usage": True}))
    pieces = [c.choices[0].delta.content or "" for c in chunks if c.choices]
    reasons = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert expected.choices[0].message.content.strip(), "the reference reply is empty: pick another seed"
    assert "".join(pieces) == expected.choices[0].message.content
    assert len([p for p in pieces if p]) >= 2  # it really streamed, in pieces
    assert reasons == [expected.choices[0].finish_reason]
    assert chunks[-1].usage.completion_tokens == expected.usage.completion_tokens


@pytest.mark.slow
def test_eight_concurrent_clients_share_batches(client):
    def ask(index: int):
        raw = client.chat.completions.with_raw_response.create(
            model="replica", messages=[{"role": "user", "content": f"ciao numero {index}"}], max_tokens=12, seed=index
        )
        return int(raw.headers["x-replica-batch"]), raw.parse()

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(ask, range(8)))
    for _, reply in answers:
        assert_clean(reply.choices[0].message.content)
        assert 1 <= reply.usage.completion_tokens <= 12
    sizes = [size for size, _ in answers]
    assert max(sizes) >= 2, sizes  # requests arriving together shared a generate
    assert all(1 <= size <= 8 for size in sizes), sizes  # --max-batch default 8


@pytest.mark.slow
def test_stop_strings_never_appear_in_the_reply(client):
    for seed in range(3):
        reply = client.chat.completions.create(
            model="replica", messages=[{"role": "user", "content": "dimmi tutto"}], max_tokens=32, seed=seed, stop=["a", "o"]
        )
        content = reply.choices[0].message.content
        assert "a" not in content and "o" not in content, content


@pytest.mark.slow
def test_top_p_field_narrows_sampling(server):
    """top_p close to 0 keeps only the most likely token: temperature-2 sampling becomes the greedy reply."""
    ask = lambda **extra: reply_text(chat(server, {"messages": [{"role": "user", "content": "come va?"}], "max_tokens": 10, **extra}))
    greedy = ask(temperature=0)
    sampled = [ask(temperature=2.0, seed=seed, top_p=1.0) for seed in range(3)]
    assert any(text != greedy for text in sampled), "temperature 2 never left the greedy reply: the check below would prove nothing"
    assert [ask(temperature=2.0, seed=seed, top_p=1e-9) for seed in range(3)] == [greedy] * 3


@pytest.mark.slow
def test_tiny_temperature_is_greedy_not_an_error(server):
    greedy = reply_text(chat(server, {"messages": [{"role": "user", "content": "ciao"}], "max_tokens": 8, "temperature": 0}))
    tiny = chat(server, {"messages": [{"role": "user", "content": "ciao"}], "max_tokens": 8, "temperature": 1e-40, "seed": 3})
    assert reply_text(tiny) == greedy  # 1e-40 divides the logits into inf/nan: it must mean greedy


@pytest.mark.slow
def test_default_and_largest_max_tokens(server, seed_to_length):
    unnamed = chat(server, {"messages": [{"role": "user", "content": "ciao"}], "temperature": 2.0, "seed": seed_to_length}).json()
    assert unnamed["usage"]["completion_tokens"] == DEFAULT_MAX_TOKENS and unnamed["choices"][0]["finish_reason"] == "length"
    at_limit = chat(server, {"messages": [{"role": "user", "content": "ciao"}], "max_tokens": MAX_TOKENS_LIMIT, "temperature": 0})
    assert at_limit.status == 200
    over = chat(server, {"messages": [{"role": "user", "content": "ciao"}], "max_tokens": MAX_TOKENS_LIMIT + 1})
    assert_error_object(over, 400, str(MAX_TOKENS_LIMIT), param="max_tokens")


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
        client.chat.completions.create(model="replica", messages=[{"role": "user", "content": "ciao"}], n=2)
    bad_role = chat(server, {"messages": [{"role": "pirate", "content": SECRET}]})
    assert_error_object(bad_role, 400, "messages.0.role", param="messages.0.role")
    assert SECRET not in bad_role.raw.decode()
    fits = {"messages": [{"role": "user", "content": "x" * ((MAX_BODY_KB - 4) * 1024)}], "max_tokens": 2}
    assert chat(server, fits).status == 200  # just under --max-body-kb
    too_big = {"messages": [{"role": "user", "content": "x" * ((MAX_BODY_KB + 4) * 1024)}], "max_tokens": 2}
    assert_error_object(chat(server, too_big), 413, f"{MAX_BODY_KB * 1024} bytes")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("field", "value"),
    [("max_tokens", True), ("max_tokens", "64"), ("temperature", "0.5"), ("stream", "yes"), ("seed", 1.5), ("n", True)],
)
def test_strict_types(server, field, value):
    answer = chat(server, {"messages": [{"role": "user", "content": "ciao"}], field: value})
    assert_error_object(answer, 400, field, param=field)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [("POST", "/v1/chat/completions", b"{not json", 400), ("POST", "/v1/chat/completions", b"[1, 2]", 400),
     ("GET", "/v1/nothing-here", None, 404), ("GET", "/static/missing.js", None, 404), ("DELETE", "/v1/models", None, 405)],
)
def test_every_error_is_an_openai_error_object(server, method, path, body, status):
    assert_error_object(call(server.url, method, path, body, AUTH), status)


# ---- one bad request fails alone ---------------------------------------------------------------------------
LONE_SURROGATE = '{"messages": [{"role": "user", "content": "ciao \\ud800 SEGRETISSIMO-42"}], "max_tokens": 8%s}'


@pytest.mark.slow
def test_lone_surrogate_is_a_400_naming_the_field_and_its_batch_is_unharmed(server, client):
    def normal(seed: int):
        return client.chat.completions.create(model="replica", messages=[{"role": "user", "content": "ciao"}], max_tokens=8, seed=seed)

    expected = [normal(seed).choices[0].message.content for seed in range(5)]
    with ThreadPoolExecutor(7) as pool:
        normals = [pool.submit(normal, seed) for seed in range(5)]
        poisoned = pool.submit(call, server.url, "POST", "/v1/chat/completions", LONE_SURROGATE % "", AUTH)
        poisoned_stream = pool.submit(call, server.url, "POST", "/v1/chat/completions", LONE_SURROGATE % ', "stream": true', AUTH)
        assert [f.result().choices[0].message.content for f in normals] == expected
        for answer in (poisoned.result(), poisoned_stream.result()):
            assert_error_object(answer, 400, "messages.0.content", "surrogate", param="messages.0.content")
            assert SECRET not in answer.raw.decode()
    assert "Traceback" not in server.output() and SECRET not in server.output()


def _fault_injected_server(run_dir, marker: str):
    """The real app, batcher and model in-process, with one injected fault: a batch holding `marker` raises
    like a GPU out of memory (the real failure a batch can hit that no validation can foresee)."""
    import threading

    import torch
    import uvicorn

    from replica.inference.jobs import Sampling
    from replica.inference.loading import load_run
    from replica.inference.transformers_engine import TransformersEngine
    from replica.serve.app import Limits, Service, create_app
    from replica.serve.batcher import Batcher
    from replica.serve.guard import host_policy
    from tests.serve_helpers import free_port

    model, formatter, _ = load_run(run_dir)
    transformers_engine = TransformersEngine(model, formatter)

    def generate(jobs):
        if any(marker in turn["text"] for job in jobs for turn in job.context):
            raise torch.OutOfMemoryError(f"simulated for a batch of {len(jobs)}")
        return transformers_engine.generate_batch(jobs)

    batcher = Batcher(generate, max_batch=8, window_s=0.8, queue_size=16)
    limits = Limits(max_body_bytes=65536, max_tokens=64, default_max_tokens=8, read_timeout_s=10)
    engine = Service(batcher, Sampling(temperature=0.8, top_p=0.95), "replica", limits, formatter.prompt_ids)
    port = free_port()
    app = create_app(engine, None, host_policy("127.0.0.1", []))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        thread.join(0.05)
    return server, thread, f"http://127.0.0.1:{port}"


@pytest.mark.slow
def test_a_failing_row_fails_alone_and_its_stream_ends_with_an_error_event(run_dir, caplog):
    import httpx
    from openai import APIError, InternalServerError, OpenAI

    server, thread, url = _fault_injected_server(run_dir, "BOOM")
    client = OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=300)
    poison = [{"role": "user", "content": "BOOM"}]

    def normal(seed: int):
        return client.chat.completions.create(model="replica", messages=[{"role": "user", "content": "ciao"}], max_tokens=6, seed=seed)

    def failing_stream():
        with pytest.raises(APIError, match="could not be generated"):
            for _ in client.chat.completions.create(model="replica", messages=poison, max_tokens=6, stream=True):
                pass
        return True

    def raw_failing_stream() -> list[str]:
        body = {"messages": poison, "max_tokens": 6, "stream": True}
        with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=300) as response:
            return [line for line in response.iter_lines() if line]

    try:
        with caplog.at_level("WARNING", logger="replica.serve"), ThreadPoolExecutor(8) as pool:
            normals = [pool.submit(normal, seed) for seed in range(4)]
            failing = pool.submit(client.chat.completions.create, model="replica", messages=poison, max_tokens=6)
            streams = [pool.submit(failing_stream), pool.submit(raw_failing_stream)]
            replies = [f.result() for f in normals]
            with pytest.raises(InternalServerError) as failed:
                failing.result()
            assert streams[0].result()
            events = streams[1].result()
        alone = [normal(seed).choices[0].message.content for seed in range(4)]
    finally:
        server.should_exit = True
        thread.join(30)
    assert [r.choices[0].message.content for r in replies] == alone
    assert failed.value.body["type"] == "server_error" and "OutOfMemoryError" in failed.value.body["message"]
    assert json.loads(events[-2].removeprefix("data: "))["error"]["type"] == "server_error"
    assert events[-1] == "data: [DONE]"
    assert any("retrying its requests one at a time" in r.getMessage() for r in caplog.records)
    assert all(r.exc_info is None and "BOOM" not in r.getMessage() for r in caplog.records)


# ---- clients that go away, or never finish ------------------------------------------------------------------
@pytest.mark.slow
def test_client_leaving_mid_stream_does_not_break_the_server_and_nothing_is_logged(server, client):
    import httpx

    body = {"messages": [{"role": "user", "content": SECRET}], "max_tokens": MAX_TOKENS_LIMIT, "stream": True, "temperature": 1.5}
    with httpx.stream("POST", f"{server.url}/v1/chat/completions", json=body, headers=AUTH, timeout=300) as response:
        assert response.status_code == 200
        next(response.iter_lines())  # the first event arrived; now hang up
    reply = client.chat.completions.create(model="replica", messages=[{"role": "user", "content": SECRET}], max_tokens=8)
    assert reply.choices[0].message.content is not None
    assert SECRET not in server.output()


@pytest.fixture(scope="module")
def open_engine(run_dir):
    """`open_engine(name)`: the run's engine in this process (transformers on the 4-bit model, or llama.cpp)."""
    from replica.inference.engines import open_run_engines
    from replica.model.run_dir import inspect_run

    opened = []

    def open_one(name: str):
        engine = open_run_engines(inspect_run(run_dir), engine=name, quant="q8_0", sides=(True,), slots=2, max_new_tokens=64)[True]
        opened.append(engine)
        return engine

    yield open_one
    for engine in opened:
        engine.close()


def generate_together(engine, jobs):
    """All `jobs` generating at once: one batch (transformers) or all slots running together (llama.cpp)."""
    return engine.generate_batch(jobs) if hasattr(engine, "generate_batch") else engine.generate(jobs, batch_size=len(jobs))


@pytest.mark.slow
@pytest.mark.parametrize("engine_name", ENGINES)
def test_cancelled_job_stops_its_row_at_once(open_engine, engine_name):
    """A job cancelled at its 4th token ends there ("cancelled", 4 tokens), where alone it runs on; its neighbour
    generating with it is untouched."""
    from replica.inference.jobs import Job, Sampling

    engine = open_engine(engine_name)
    context = [{"role": "them", "text": "ciao"}]
    neighbour = Job(context, Sampling(max_new_tokens=6))
    runs_on = next(
        (sampling, reply) for seed in range(16)
        for sampling in [Sampling(max_new_tokens=40, do_sample=True, temperature=2.0, seed=seed)]
        for reply in generate_together(engine, [Job(context, sampling)])
        if len(reply.token_ids) > 8
    )
    sampling, alone = runs_on
    counted = {"polls": 0}

    def never() -> bool:
        counted["polls"] += 1
        return False

    [again] = generate_together(engine, [Job(context, sampling, cancelled=never)])
    assert again.token_ids == alone.token_ids
    asked_per_token = len(again.token_ids) - (again.finish_reason == "stop")  # a row's last token is not asked about when it ends the row
    before_first_token = counted["polls"] - asked_per_token  # an engine may also ask while the job waits
    polls = {"seen": 0}

    def cancelled() -> bool:
        polls["seen"] += 1
        return polls["seen"] >= before_first_token + 4

    [neighbour_alone] = generate_together(engine, [neighbour])
    leaving, staying = generate_together(engine, [Job(context, sampling, cancelled=cancelled), neighbour])
    assert leaving.finish_reason == "cancelled" and leaving.token_ids == alone.token_ids[:4]
    assert staying.token_ids == neighbour_alone.token_ids and staying.finish_reason == neighbour_alone.finish_reason


def _send_and_hang_up(server, body: dict) -> None:
    payload = json.dumps(body).encode()
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            + f"Authorization: Bearer {KEY}\r\nContent-Length: {len(payload)}\r\n\r\n".encode() + payload
        )


@pytest.mark.slow
def test_abandoned_non_streaming_requests_stop_generating(server, seed_to_length):
    long_body = {"messages": [{"role": "user", "content": "ciao"}], "max_tokens": MAX_TOKENS_LIMIT, "temperature": 2.0, "seed": seed_to_length}
    started = time.perf_counter()
    # long: the seed ran to the limit when it was found (llama.cpp may end it a little sooner once its prompt is
    # cached: a reused prefix moves the logits by ~1e-6, enough to change a temperature-2 draw)
    assert chat(server, long_body).json()["usage"]["completion_tokens"] >= MAX_TOKENS_LIMIT // 2
    one_long_reply_s = time.perf_counter() - started
    for _ in range(8):
        _send_and_hang_up(server, long_body)  # 8 batched rows of MAX_TOKENS_LIMIT tokens, if nobody cancels them
    time.sleep(0.3)
    started = time.perf_counter()
    assert chat(server, {"messages": [{"role": "user", "content": "ciao"}], "max_tokens": 4}).status == 200
    after_s = time.perf_counter() - started
    assert after_s < one_long_reply_s / 2, (after_s, one_long_reply_s)


def _closed_within(sock: socket.socket, seconds: float) -> tuple[bool, bytes]:
    """(whether the server closed the connection within `seconds`, what it sent before closing)."""
    sock.settimeout(seconds)
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except TimeoutError:
        return False, received
    return True, received


@pytest.mark.slow
def test_headers_that_never_finish_are_cut_off(server):
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")  # and then nothing
        started = time.monotonic()
        closed, _ = _closed_within(sock, READ_TIMEOUT_S + 10)
        assert closed and time.monotonic() - started < READ_TIMEOUT_S + 5


@pytest.mark.slow
def test_a_body_shorter_than_its_content_length_gets_408(server):
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            + f"Authorization: Bearer {KEY}\r\nContent-Length: 100\r\n\r\n".encode() + b'{"messages": '
        )
        closed, received = _closed_within(sock, READ_TIMEOUT_S + 10)
    assert closed and received.startswith(b"HTTP/1.1 408"), received[:200]
    assert json.loads(received.partition(b"\r\n\r\n")[2])["error"]["type"] == "invalid_request_error"


@pytest.mark.slow
def test_half_open_connections_are_limited_and_freed(server, client):
    sockets = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(40)]
    try:
        for sock in sockets:
            sock.sendall(b"GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # headers never finished
        assert call(server.url, "GET", "/health").status == 503  # over --max-connections: refused, not queued
        closed = [_closed_within(sock, READ_TIMEOUT_S + 10)[0] for sock in sockets]
        assert all(closed)
    finally:
        for sock in sockets:
            sock.close()
    assert [model.id for model in client.models.list().data] == ["replica"]


# ---- Host allow-list and page security headers ----------------------------------------------------------------
def _host_status(server, host: bytes) -> tuple[int, bytes]:
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: " + host + b"\r\nConnection: close\r\n\r\n")
        _, received = _closed_within(sock, 30)
    return int(received.split(b" ", 2)[1]), received.partition(b"\r\n\r\n")[2]


@pytest.mark.slow
def test_host_header_allow_list(server):
    port = str(server.port).encode()
    for host in (b"127.0.0.1:" + port, b"localhost:" + port, b"[::1]:" + port, b"localhost", ALLOWED_HOST.encode() + b":" + port):
        assert _host_status(server, host)[0] == 200, host
    for host in (b"evil.example:" + port, b"evil.example", b"0.0.0.0:" + port, b"192.168.1.20", b"replica.test.evil.example"):
        status, body = _host_status(server, host)
        assert status == 400 and "--allowed-host" in json.loads(body)["error"]["message"], host


# ---- the web pages in a real headless Chromium -------------------------------------------------------------
@pytest.fixture
def browser_context(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(http_credentials={"username": "friend", "password": KEY}, viewport={"width": 1000, "height": 700})
        try:
            yield context
        finally:
            context.close()
            browser.close()


@pytest.fixture
def page(browser_context):
    return browser_context.new_page()


@pytest.mark.slow
@needs_chromium
def test_web_chat_streams_a_reply_with_its_settings_and_starts_over(server, client, page, seed_to_length):
    console = []
    page.on("console", lambda message: console.append(message.text))
    expected = client.chat.completions.create(
        model="replica", messages=[{"role": "user", "content": "ciao, stasera ci sei?"}], max_tokens=3, temperature=2.0, seed=seed_to_length
    )
    assert expected.choices[0].finish_reason == "length" and expected.choices[0].message.content.strip()
    page.goto(server.url + "/")
    page.get_by_text("Sampling settings").click()
    page.get_by_test_id("max-tokens").fill("3")
    page.get_by_test_id("temperature").fill("2")
    page.get_by_test_id("seed").fill(str(seed_to_length))
    page.get_by_test_id("message-input").fill("ciao, stasera ci sei?")
    with page.expect_request("**/v1/chat/completions") as sent:
        page.get_by_test_id("send").click()
    assert json.loads(sent.value.post_data)["max_tokens"] == 3
    page.locator('[data-testid="reply"][data-state="done"]').first.wait_for(timeout=300_000)
    assert page.get_by_test_id("reply").first.inner_text() == expected.choices[0].message.content
    page.get_by_test_id("message-input").fill("e domani?")
    page.get_by_test_id("send").click()
    page.locator('[data-testid="reply"][data-state="done"]').nth(1).wait_for(timeout=300_000)  # locators, not eval: the CSP forbids it
    page.get_by_test_id("new-conversation").click()
    assert page.get_by_test_id("reply").count() == 0
    assert not [text for text in console if "Content Security Policy" in text], console  # the page obeys its own CSP


@pytest.mark.slow
@needs_chromium
def test_pages_forbid_inline_scripts_framing_and_sniffing(server, page):
    for path in ("/", "/blind", "/static/chat.js"):
        headers = page.goto(server.url + path).headers
        assert "frame-ancestors 'none'" in headers["content-security-policy"] and "script-src 'self'" in headers["content-security-policy"]
        assert headers["x-content-type-options"] == "nosniff" and headers["x-frame-options"] == "DENY"
    page.goto(server.url + "/")
    injected = page.evaluate(
        "() => { const s = document.createElement('script'); s.textContent = 'window.injected = 1';"
        " document.body.appendChild(s); return window.injected === undefined; }"
    )
    assert injected, "an inline script ran: the Content-Security-Policy is not enforced"
    page.set_content(f'<iframe src="{server.url}/"></iframe>')
    page.wait_for_timeout(1500)
    framed = page.frames[1]
    assert framed.evaluate("() => document.querySelector('[data-testid=send]') === null")  # refused to render framed


# ---- blind test ---------------------------------------------------------------------------------------------
def count_guesses(run_dir: Path) -> tuple[str, int]:
    connection = sqlite3.connect(run_dir / "blind" / "guesses.sqlite")
    try:
        return connection.execute("PRAGMA integrity_check").fetchone()[0], connection.execute("SELECT COUNT(*) FROM guesses").fetchone()[0]
    finally:
        connection.close()


class Visitor:
    """One browser's view of the blind test: its own cookie jar, the server's key."""

    def __init__(self, server) -> None:
        import http.cookiejar

        self.url = server.url
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))

    def _open(self, path: str, body: dict | None = None) -> tuple[int, dict]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.url}{path}", data=data, headers=AUTH)
        try:
            with self.opener.open(request, timeout=300) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read())

    def next(self) -> tuple[int, dict]:
        return self._open("/blind/api/next")

    def guess(self, choice: str) -> tuple[int, dict]:
        return self._open("/blind/api/guess", {"choice": choice})


def visible(context: list[dict], relationship=None, group=False) -> str:
    """What a guesser sees of an example besides the two replies: its turns and, in a labelled run, label and group flag."""
    turns = [{key: turn[key] for key in ("role", "text", "speaker") if turn.get(key)} for turn in context]
    return json.dumps([turns, relationship, bool(group)], sort_keys=True)


def real_replies(run_dir: Path) -> dict[str, str]:
    """A visible context -> the real reply of its first test example, in file order (read from the run's dataset)."""
    folder = Path(json.loads((run_dir / "dataset.json").read_text())["dir"])
    rows = [json.loads(line) for line in (folder / "test.jsonl").read_text(encoding="utf-8").splitlines()]
    real_of: dict[str, str] = {}
    for row in rows:
        real_of.setdefault(visible(row["context"]), row["target"])
    return real_of


@pytest.mark.slow
def test_blind_verdict_names_where_the_real_reply_was_and_the_score_counts_it(server, run_dir):
    real_of = real_replies(run_dir)
    checked, right = 0, 0
    before = call(server.url, "GET", "/blind/api/score", None, AUTH).json()
    for visit in range(24):
        visitor = Visitor(server)
        status, pair = visitor.next()
        assert status == 200
        real = [position for position, text in pair["options"].items() if text == real_of[visible(pair["context"])]]
        choice = "ab"[visit % 2]
        status, verdict = visitor.guess(choice)
        assert status == 200 and verdict["correct"] == (choice == verdict["real"])
        if len(real) == 1:  # (a replica reply that copies the real one word for word is in both positions)
            assert verdict["real"] == real[0]
            checked += 1
        right += verdict["correct"]
    assert checked >= 20
    after = verdict["score"]
    assert after["guesses"] - before["guesses"] == 24 and after["spotted"] - before["spotted"] == right


@pytest.mark.slow
def test_blind_pair_cannot_be_peeked(server, run_dir):
    first = Visitor(server)
    status, pair = first.next()
    assert status == 200 and pair["relationship"] is None  # the tiny run has no labels: a context is its turns
    assert first.next() == (200, pair)  # asking again shows the same open pair, not a fresh replica reply
    folder = Path(json.loads((run_dir / "dataset.json").read_text())["dir"])
    rows = [json.loads(line) for line in (folder / "test.jsonl").read_text(encoding="utf-8").splitlines()]
    real_of: dict[str, str] = {}  # a visible context -> the real reply of its first test example, in file order
    for row in rows:
        real_of.setdefault(visible(row["context"]), row["target"])
    assert len(real_of) < len(rows)  # the sample's test split repeats some contexts: the case this test is about
    visits = [pair]
    for _ in range(30):
        status, other = Visitor(server).next()
        assert status == 200
        visits.append(other)
    shown: dict[str, set] = {}
    for visit in visits:  # other visitors meet contexts again: each time with the very same two texts
        key = visible(visit["context"])
        assert set(visit["options"].values()) == shown.setdefault(key, set(visit["options"].values()))
        assert real_of[key] in visit["options"].values()  # one real reply per context, never two
    status, verdict = first.guess("a")
    assert status == 200 and verdict["real"] in ("a", "b")
    assert first.guess("a")[0] == 409  # one guess per shown pair
    status, after = first.next()
    assert status == 200 and after["context"] != pair["context"]  # a revealed context never comes back to its guesser


@pytest.mark.slow
def test_blind_guesses_are_capped_per_client_and_open_pairs_survive_crowds(server):
    visitor, patient = Visitor(server), Visitor(server)
    assert patient.next()[0] == 200
    for _ in range(GUESSES_PER_HOUR):
        assert visitor.next()[0] == 200
        assert visitor.guess("b")[0] == 200
    status, body = visitor.next()
    assert status == 429 and "per hour" in body["error"]["message"]
    for _ in range(300):  # more than the old 256-pair memory: nobody can push another visitor's pair out
        assert Visitor(server).next()[0] == 200
    assert patient.guess("a")[0] == 200


@pytest.mark.slow
def test_killing_the_server_mid_stream_loses_no_stored_guess(run_dir, tmp_path):
    import httpx

    target = tmp_path / "run"
    shutil.copytree(run_dir, target, ignore=shutil.ignore_patterns("blind"))
    server = Server(target, tmp_path / "killed.log")
    try:
        visitor = Visitor(server)
        for _ in range(2):
            status, pair = visitor.next()
            assert status == 200 and set(pair["options"]) == {"a", "b"}
            status, verdict = visitor.guess("a")
            assert status == 200 and verdict["real"] in ("a", "b")
        assert visitor.guess("b")[0] == 409  # a pair is answered once
        body = {"messages": [{"role": "user", "content": "ciao"}], "max_tokens": 512, "stream": True, "temperature": 1.5}
        with httpx.stream("POST", f"{server.url}/v1/chat/completions", json=body, timeout=300) as response:
            next(response.iter_lines())
            server.process.send_signal(signal.SIGKILL)
            server.process.wait(timeout=30)
    finally:
        server.stop()
    assert count_guesses(target) == ("ok", 2)


@pytest.mark.slow
@needs_chromium
def test_blind_guess_in_the_browser_is_stored_and_reported(server, run_dir, page):
    from playwright.sync_api import expect

    page.goto(server.url + "/blind")
    option = page.get_by_test_id("option-a")
    option.wait_for(state="visible")
    expect(option).to_be_enabled(timeout=300_000)
    texts = [page.get_by_test_id(f"option-{key}").inner_text() for key in "ab"]
    assert all(not any(marker in text for marker in MARKERS) for text in texts)
    before = count_guesses(run_dir)[1] if (run_dir / "blind" / "guesses.sqlite").exists() else 0
    option.click()
    expect(page.get_by_test_id("score")).to_contain_text(f"of {before + 1} times", timeout=60_000)
    score = page.get_by_test_id("score").inner_text()
    assert f"of {before + 1} times" in score and "95% interval" in score
    assert count_guesses(run_dir) == ("ok", before + 1)
    connection = sqlite3.connect(run_dir / "blind" / "guesses.sqlite")
    clients = connection.execute("SELECT COUNT(DISTINCT client) FROM guesses").fetchone()[0]
    connection.close()
    assert f"{clients} browser" in score

    done = subprocess.run(
        [sys.executable, "evaluate.py", f"run_dir={run_dir}", "eval.max_examples=4"],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((run_dir / "eval" / "metrics.json").read_text())
    assert metrics["human"]["guesses"] == before + 1 and metrics["human"]["clients"] == clients >= 1
    low, high = metrics["human"]["ci95"]
    assert 0 <= low <= metrics["human"]["rate"] <= high <= 1
    assert f"from {clients} client" in (run_dir / "eval" / "report.md").read_text()


# ---- a merged folder, with batching options, a small queue, other sampling defaults and a non-ASCII key --------
NON_ASCII_KEY = "chiave-è-🔑-segreta"
MERGED_AUTH = {"Authorization": b"Bearer " + NON_ASCII_KEY.encode(), "Content-Type": "application/json"}
MAX_BATCH, WINDOW_MS, QUEUE_SIZE, TEMPERATURE, TOP_P = 3, 1500, 2, 1.7, 0.5


@pytest.fixture(scope="module")
def merged_dir(run_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("merged") / "merged"
    merged = replica_cli("merge", run_dir, "--out", out, timeout=900)
    assert merged.returncode == 0, merged.stderr
    return out


@pytest.fixture(scope="module")
def merged_server(merged_dir, engine, tmp_path_factory):
    process = Server(
        merged_dir, tmp_path_factory.mktemp("merged-log") / "server.log", "--api-key", NON_ASCII_KEY, "--max-batch", str(MAX_BATCH),
        "--batch-window-ms", str(WINDOW_MS), "--queue-size", str(QUEUE_SIZE), "--temperature", str(TEMPERATURE), "--top-p", str(TOP_P),
        "--engine", engine,
    )
    yield process
    process.stop()


def merged_chat(server, **fields):
    body = {"messages": [{"role": "user", "content": "ciao, come va?"}], "max_tokens": 8, **fields}
    return call(server.url, "POST", "/v1/chat/completions", body, MERGED_AUTH)


@pytest.mark.slow
def test_merged_folder_is_served_and_its_blind_test_explains_why_not(merged_server):
    assert_clean(reply_text(merged_chat(merged_server)))
    assert_error_object(call(merged_server.url, "GET", "/blind/api/next", None, MERGED_AUTH), 404, "serve the run folder")


@pytest.mark.slow
def test_merged_folder_answers_with_the_runs_reply_length(merged_server):
    recorded = int(next(item.split("=")[1] for item in FAST_OVERRIDES if item.startswith("generation.max_new_tokens=")))
    seed = long_seed(merged_server.url, MERGED_AUTH, 400, parallel=MAX_BATCH)  # a reply that runs on when let
    body = {"messages": [{"role": "user", "content": "ciao"}], "temperature": 2.0, "seed": seed}  # no max_tokens
    answer = call(merged_server.url, "POST", "/v1/chat/completions", body, MERGED_AUTH)
    assert answer.status == 200, answer.raw
    assert answer.json()["choices"][0]["finish_reason"] == "length"
    assert answer.json()["usage"]["completion_tokens"] == recorded  # the run's generation.max_new_tokens, merged along


@pytest.mark.slow
def test_non_ascii_api_key_matches_as_utf8(merged_server):
    assert call(merged_server.url, "GET", "/v1/models", None, MERGED_AUTH).status == 200
    basic = b"Basic " + base64.b64encode(b"friend:" + NON_ASCII_KEY.encode())
    assert call(merged_server.url, "GET", "/v1/models", None, {"Authorization": basic}).status == 200
    wrong = b"Bearer " + "chiave-e-🔑-segreta".encode()
    assert_error_object(call(merged_server.url, "GET", "/v1/models", None, {"Authorization": wrong}), 401)


@pytest.mark.slow
@needs_chromium
def test_non_ascii_api_key_opens_the_pages_in_a_browser(merged_server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(http_credentials={"username": "friend", "password": NON_ASCII_KEY})
            assert context.new_page().goto(merged_server.url + "/").status == 200
        finally:
            browser.close()


@pytest.mark.slow
def test_batch_window_gathers_later_requests_up_to_max_batch(merged_server):
    def batch_size(delay: float) -> int:
        time.sleep(delay)
        answer = merged_chat(merged_server, max_tokens=2)
        assert answer.status == 200, answer.raw
        return int(answer.headers["x-replica-batch"])

    with ThreadPoolExecutor(2) as pool:  # the second arrives 0.4 s later, well inside the 1.5 s window
        assert list(pool.map(batch_size, [0, 0.4])) == [2, 2]
    with ThreadPoolExecutor(5) as pool:  # 0.1 s apart: within one window, and never more than the queue holds at once
        sizes = list(pool.map(batch_size, [0.1 * i for i in range(5)]))
    assert max(sizes) == MAX_BATCH and all(size <= MAX_BATCH for size in sizes), sizes


@pytest.mark.slow
def test_a_full_queue_answers_503_with_retry_after(merged_server):
    """One more long request than a full batch plus a full queue, all at once: exactly one is refused (whatever the
    engine's speed: the batch cannot finish 400 tokens while the requests arrive)."""
    seed = long_seed(merged_server.url, MERGED_AUTH, 400, parallel=MAX_BATCH)
    ask = lambda _: merged_chat(merged_server, max_tokens=400, temperature=2.0, seed=seed)
    with ThreadPoolExecutor(MAX_BATCH + QUEUE_SIZE + 1) as pool:
        answers = list(pool.map(ask, range(MAX_BATCH + QUEUE_SIZE + 1)))
    refused = [answer for answer in answers if answer.status != 200]
    assert len(refused) == 1, [answer.status for answer in answers]
    assert_error_object(refused[0], 503, "busy")
    assert refused[0].headers["retry-after"] == "1"


@pytest.mark.slow
def test_temperature_and_top_p_defaults_apply_to_requests_that_name_none(merged_server):
    def variants(seed: int) -> list[str]:
        with ThreadPoolExecutor(3) as pool:  # one batch of three rows with the same prompt
            answers = [
                pool.submit(merged_chat, merged_server, seed=seed, max_tokens=12),
                pool.submit(merged_chat, merged_server, seed=seed, max_tokens=12, temperature=TEMPERATURE, top_p=TOP_P),
                pool.submit(merged_chat, merged_server, seed=seed, max_tokens=12, temperature=0.8, top_p=0.95),
            ]
            return [reply_text(answer.result()) for answer in answers]

    results = [variants(seed) for seed in range(4)]
    assert all(unnamed == configured for unnamed, configured, _ in results)
    assert any(unnamed != usual for unnamed, _, usual in results), "0.8/0.95 gave the same replies: nothing was checked"
