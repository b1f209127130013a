"""The blind test at /blind: a masked context from the run's held-out test split, the user's real reply and a fresh
replica reply in random order; which one is really them? Guesses go to `<run>/blind/guesses.sqlite`."""

from __future__ import annotations

import asyncio
import secrets
from collections import OrderedDict
from pathlib import Path
from typing import Any, Literal

from fastapi import FastAPI
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, ConfigDict

from replica.evaluation.human import POSITIONS, human_score, record_guess
from replica.serve import openai_api

MAX_PENDING = 256  # shown-but-unanswered pairs kept in memory (oldest forgotten first)
REPLY_ATTEMPTS = 3  # an empty replica reply would give the answer away: sample again


class Guess(BaseModel):
    model_config = ConfigDict(extra="forbid")
    token: str
    choice: Literal["a", "b"]


class BlindTest:
    """Pairs shown to the browser are remembered server-side (token -> example, real position) until guessed."""

    def __init__(self, run_dir: Path | None, examples: list[dict], unavailable: str | None = None) -> None:
        self.run_dir = run_dir
        self.examples = examples
        self.unavailable = unavailable
        self.pending: OrderedDict[str, tuple[int, str]] = OrderedDict()

    def score(self) -> dict[str, Any]:
        score = human_score(self.run_dir) if self.run_dir is not None else None
        return score or {"guesses": 0, "spotted": 0, "rate": None, "ci95": [0.0, 1.0]}

    async def next_pair(self, engine) -> dict[str, Any]:
        index = secrets.randbelow(len(self.examples))
        example = self.examples[index]
        context = [{"role": turn["role"], "text": turn["text"]} for turn in example["context"]]
        fake = ""
        for _ in range(REPLY_ATTEMPTS):
            fake = (await engine.reply(engine.job(context))).text
            if fake:
                break
        real_position = secrets.choice(POSITIONS)
        options = {real_position: example["target"], _other(real_position): fake}
        token = secrets.token_urlsafe(16)
        self.pending[token] = (index, real_position)
        while len(self.pending) > MAX_PENDING:
            self.pending.popitem(last=False)
        return {"token": token, "context": context, "options": options, "score": self.score()}

    def guess(self, guess: Guess) -> dict[str, Any] | None:
        shown = self.pending.pop(guess.token, None)
        if shown is None:
            return None
        index, real_position = shown
        record_guess(self.run_dir, index, real_position, guess.choice)
        return {"correct": guess.choice == real_position, "real": real_position, "score": self.score()}

    def add_routes(self, app: FastAPI, engine) -> None:
        @app.get("/blind")
        async def blind_page() -> FileResponse:
            return FileResponse(Path(__file__).with_name("static") / "blind.html")

        @app.get("/blind/api/next")
        async def next_pair():
            if self.unavailable:
                return JSONResponse(openai_api.error_body(self.unavailable, "blind_test_unavailable"), status_code=404)
            return await self.next_pair(engine)

        @app.post("/blind/api/guess")
        async def guess(guess: Guess):
            result = await asyncio.to_thread(self.guess, guess)
            if result is None:
                message = "this pair was already answered or has expired: load a new one"
                return JSONResponse(openai_api.error_body(message, "invalid_request_error", "token"), status_code=409)
            return result

        @app.get("/blind/api/score")
        async def score():
            return await asyncio.to_thread(self.score)


def _other(position: str) -> str:
    return POSITIONS[1 - POSITIONS.index(position)]
