"""The blind test at /blind: a masked context from the run's held-out test split, the user's real reply and a
replica reply in random order; which one is really them? Guesses go to `<run>/blind/guesses.sqlite`.

Why it cannot be peeked or gamed (docs/serving.md explains it for users):
- each context's replica reply is generated once and pinned, so seeing a context again, by any client, shows the
  same two texts: the repeated option is no longer the real one. Test examples whose visible context (turns,
  label, group flag) is the same are shown as one: the first of them, so a context never pairs with two real replies;
- a client (a signed cookie) has one open pair until it guesses: asking again returns the same pair;
- a client never gets a context it has already guessed (the answer was revealed to it);
- a client adds at most `guesses_per_hour` guesses; open pairs are never evicted by other clients (when the table
  of open pairs is full, new pairs are refused until some are answered or expire);
- the score reports how many clients it comes from.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import os
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, ConfigDict

from replica.errors import ReplicaInputError
from replica.evaluation.human import (
    POSITIONS,
    client_history,
    guesses_path,
    human_score,
    record_guess,
)
from replica.model.run_dir import RunInfo
from replica.serve.openai_api import error_response

REPLY_ATTEMPTS = 3  # an empty replica reply would give the answer away: sample again
COOKIE = "replica_blind"
KEY_FILE = "client.key"  # next to guesses.sqlite: signs client cookies, so a restart keeps clients apart


@dataclass(frozen=True)
class BlindLimits:
    guesses_per_hour: int = 60  # per client
    max_open_pairs: int = 1024  # shown-but-unanswered pairs, over all clients
    open_pair_ttl_s: float = 1800.0  # an open pair expires after this long


@dataclass(frozen=True)
class _Open:
    index: int
    real_position: str
    options: dict[str, str]
    shown_at: float


class Guess(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    choice: Literal["a", "b"]


def blind_test_of_run(info: RunInfo | None, limits: BlindLimits, labelled: bool = False) -> BlindTest:
    """The blind test over the masked test split of exactly the run's dataset (as evaluate.py reads it);
    unavailable, with the reason, for a merged folder (`info` None) or a dataset that cannot be found or rebuilt.
    `labelled`: the served prompts name each example's relationship, so the label is part of what a guesser sees."""
    from replica.evaluation.data import load_split
    from replica.prepare.pipeline import run_dataset

    if info is None:
        return BlindTest(None, [], "a merged model carries no dataset: serve the run folder to take the blind test", limits)
    try:
        examples = load_split(run_dataset(info.run_dir, log=logging.getLogger(__name__).info).dir, "test")
    except ReplicaInputError as err:
        return BlindTest(info.run_dir, [], f"the run's test split is unavailable ({err})", limits)
    return BlindTest(info.run_dir, examples, limits=limits, labelled=labelled)


class BlindTest:
    """Open pairs live in memory, one per client, until guessed or expired; pinned replica replies per context."""

    def __init__(
        self, run_dir: Path | None, examples: list[dict], unavailable: str | None = None, limits: BlindLimits = BlindLimits(),
        labelled: bool = False,
    ) -> None:
        self.run_dir = run_dir
        self.examples = examples
        self.unavailable = unavailable
        self.limits = limits
        self.pool = _one_per_visible_context(examples, labelled)
        self.open: dict[str, _Open] = {}
        self.pins: dict[int, asyncio.Future[str]] = {}
        self.key = _cookie_key(guesses_path(run_dir).parent / KEY_FILE) if run_dir is not None and not unavailable else b""

    def score(self) -> dict[str, Any]:
        score = human_score(self.run_dir) if self.run_dir is not None else None
        return score or {"guesses": 0, "spotted": 0, "rate": None, "ci95": [0.0, 1.0], "clients": 0}

    async def next_pair(self, engine, client: str) -> JSONResponse | dict[str, Any]:
        self._expire()
        shown = self.open.get(client)
        if shown is None:
            seen, recent = await asyncio.to_thread(client_history, self.run_dir, client, _hour_ago())
            if recent >= self.limits.guesses_per_hour:
                message = f"at most {self.limits.guesses_per_hour} guesses per hour: come back later"
                return error_response(429, message, "rate_limit_exceeded", headers={"Retry-After": "600"})
            if len(self.open) >= self.limits.max_open_pairs:
                return error_response(429, "too many people are mid-guess: retry in a minute", "rate_limit_exceeded", headers={"Retry-After": "60"})
            unseen = [i for i in self.pool if i not in seen]
            if not unseen:
                return error_response(404, "you have seen every conversation of the test split: thank you!", "blind_test_done")
            index = secrets.choice(unseen)
            real_position = secrets.choice(POSITIONS)
            fake = await self._pinned_reply(engine, index)
            options = {real_position: self.examples[index]["target"], _other(real_position): fake}
            shown = self.open.setdefault(client, _Open(index, real_position, options, time.monotonic()))
        example = self.examples[shown.index]
        relationship, group = _addressee(engine, example)
        return {
            "context": _context(example), "relationship": relationship, "group": group,
            "options": shown.options, "score": await asyncio.to_thread(self.score),
        }

    async def _pinned_reply(self, engine, index: int) -> str:
        """The replica's reply to this context, generated once (concurrent first visitors share it)."""
        if index not in self.pins:
            self.pins[index] = asyncio.ensure_future(self._generate(engine, index))
        try:
            return await asyncio.shield(self.pins[index])
        except Exception:
            self.pins.pop(index, None)  # a failed generation is not pinned: the next visitor tries again
            raise

    async def _generate(self, engine, index: int) -> str:
        """A replica reply to the example's context, written to the example's relationship (if the run has labels)."""
        example = self.examples[index]
        relationship, group = _addressee(engine, example)
        fake = ""
        for _ in range(REPLY_ATTEMPTS):
            fake = (await engine.reply(engine.job(_context(example), relationship=relationship, group=group))).reply.text
            if fake:
                break
        return fake

    async def guess(self, client: str, choice: str) -> dict[str, Any] | None:
        """Store the client's guess on its open pair (one transaction) and reveal the answer; None if none is open."""
        self._expire()
        shown = self.open.pop(client, None)
        if shown is None:
            return None
        await asyncio.to_thread(record_guess, self.run_dir, shown.index, shown.real_position, choice, client=client)
        score = await asyncio.to_thread(self.score)
        return {"correct": choice == shown.real_position, "real": shown.real_position, "score": score}

    def _expire(self) -> None:
        oldest = time.monotonic() - self.limits.open_pair_ttl_s
        for client in [c for c, shown in self.open.items() if shown.shown_at < oldest]:
            del self.open[client]

    def client_of(self, request: Request) -> tuple[str, bool]:
        """(client id, whether it is new) from the signed cookie; a missing or forged cookie means a new client."""
        client, _, signature = request.cookies.get(COOKIE, "").partition(".")
        if client and hmac.compare_digest(signature, self._sign(client)):
            return client, False
        return secrets.token_urlsafe(16), True

    def _sign(self, client: str) -> str:
        return hmac.new(self.key, client.encode(), hashlib.sha256).hexdigest()[:32]

    def _with_cookie(self, response: JSONResponse, client: str) -> JSONResponse:
        cookie = f"{client}.{self._sign(client)}"
        response.set_cookie(COOKIE, cookie, max_age=365 * 24 * 3600, path="/blind", httponly=True, samesite="strict")
        return response

    def add_routes(self, app: FastAPI, engine) -> None:
        @app.get("/blind")
        async def blind_page() -> FileResponse:
            return FileResponse(Path(__file__).with_name("static") / "blind.html")

        @app.get("/blind/api/next")
        async def next_pair(request: Request):
            if self.unavailable:
                return error_response(404, self.unavailable, "blind_test_unavailable")
            client, new = self.client_of(request)
            result = await self.next_pair(engine, client)
            response = result if isinstance(result, JSONResponse) else JSONResponse(result)
            return self._with_cookie(response, client) if new else response

        @app.post("/blind/api/guess")
        async def guess(guess: Guess, request: Request):
            if self.unavailable:
                return error_response(404, self.unavailable, "blind_test_unavailable")
            client, _ = self.client_of(request)
            result = await self.guess(client, guess.choice)
            if result is None:
                message = "no open pair for you (already answered or expired): load a new one"
                return error_response(409, message, "invalid_request_error", "choice")
            return result

        @app.get("/blind/api/score")
        async def score():
            return await asyncio.to_thread(self.score)


def _context(example: dict) -> list[dict]:
    """The example's masked context turns: role, text and, in a group chat, the speaker's pseudonym."""
    return [{"role": turn["role"], "text": turn["text"], **({"speaker": turn["speaker"]} if turn.get("speaker") else {})}
            for turn in example["context"]]


def _one_per_visible_context(examples: list[dict], labelled: bool) -> list[int]:
    """Indices of the first example of each distinct context (with its label and group flag when the prompts name
    them): the examples a guesser can tell apart."""
    first: dict[str, int] = {}
    for index, example in enumerate(examples):
        shown = [example.get("relationship"), bool(example.get("group"))] if labelled else []
        key = json.dumps([_context(example), *shown], sort_keys=True)
        first.setdefault(key, index)
    return sorted(first.values())


def _addressee(engine, example: dict) -> tuple[str | None, bool]:
    """(label, group chat) the example's real reply was written to; (None, False) for a run without labels, whose
    replica replies are written to nobody in particular (an old run or the ablation)."""
    if not engine.labels or not example.get("relationship"):
        return None, False
    return example["relationship"], bool(example.get("group"))


def _cookie_key(path: Path) -> bytes:
    """The run's cookie-signing key, created once (owner-only) and reused across restarts."""
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return path.read_bytes()
        with os.fdopen(descriptor, "wb") as out:
            out.write(secrets.token_bytes(32))
    return path.read_bytes()


def _hour_ago() -> str:
    return (datetime.now(timezone.utc) - timedelta(hours=1)).isoformat(timespec="seconds")


def _other(position: str) -> str:
    return POSITIONS[1 - POSITIONS.index(position)]
