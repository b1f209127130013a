"""Start `replica serve` as a real subprocess on a free localhost port and wait until it answers /health."""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT = 600  # the model loads once; a busy 2-core machine can take minutes
MARKERS = ("<|me|>", "<|them|>", "<|eot|>", "<|endoftext|>", "<|pad|>")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def replica_cli(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "replica.cli", *map(str, args)], capture_output=True, text=True, cwd=ROOT, env=env, timeout=timeout
    )


class Server:
    """A `replica serve` process; `log` collects its stdout+stderr for privacy checks."""

    def __init__(self, model_dir: Path, log: Path, *extra: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
        with open(log, "wb") as sink:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "replica.cli", "serve", str(model_dir), "--port", str(self.port), *extra],
                cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT,
            )
        self._wait_healthy()

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"replica serve exited with {self.process.returncode}: {self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=5) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.5)
        self.stop()
        raise RuntimeError("replica serve did not become healthy in time")

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)


class Answer:
    """Status, headers (lower-case names) and parsed JSON body of one HTTP exchange."""

    def __init__(self, status: int, headers: dict[str, str], raw: bytes) -> None:
        self.status = status
        self.headers = headers
        self.raw = raw

    def json(self):
        return json.loads(self.raw or b"null")


def call(url: str, method: str, path: str, body: bytes | str | dict | None = None, headers: dict | None = None, timeout: float = 300) -> Answer:
    """One request with http.client, which sends header values given as bytes untouched (non-ASCII keys)."""
    parsed = urllib.parse.urlsplit(url)
    if isinstance(body, dict):
        body = json.dumps(body)
    connection = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=timeout)
    try:
        connection.request(method, path, body=body, headers={"Content-Type": "application/json", **(headers or {})})
        response = connection.getresponse()
        return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
    finally:
        connection.close()


def long_seed(url: str, headers: dict, max_tokens: int, candidates: int = 12, parallel: int = 4) -> int:
    """A seed whose reply at temperature 2 runs to `max_tokens` (found by asking, `parallel` seeds at a time: each
    row samples with its own seed, so the same seed runs as long again)."""
    from concurrent.futures import ThreadPoolExecutor

    def finish(seed: int) -> str:
        body = {"messages": [{"role": "user", "content": "ciao"}], "max_tokens": max_tokens, "temperature": 2.0, "seed": seed}
        answer = call(url, "POST", "/v1/chat/completions", body, headers)
        assert answer.status == 200, answer.raw
        return answer.json()["choices"][0]["finish_reason"]

    with ThreadPoolExecutor(parallel) as pool:
        for first in range(0, candidates, parallel):
            seeds = range(first, first + parallel)
            for seed, reason in zip(seeds, pool.map(finish, seeds)):
                if reason == "length":
                    return seed
    raise AssertionError(f"none of seeds 0-{candidates - 1} ran to {max_tokens} tokens at temperature 2")
