"""The FastAPI app: OpenAI-compatible endpoints, /health, the web chat (/) and the blind test (/blind).

Nothing of a conversation is logged or written: request bodies never reach a log line, and validation errors name
the field, never its value. Only the blind test writes, and only the guess (no text).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import secrets
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles

from replica.inference.generation import Job, Reply, Sampling
from replica.serve import openai_api
from replica.serve.batcher import Batcher, Busy

STATIC = Path(__file__).with_name("static")
PUBLIC_PATHS = ("/health",)


@dataclass(frozen=True)
class Limits:
    max_body_bytes: int
    max_tokens: int  # largest max_tokens a request may ask for
    default_max_tokens: int


class Engine:
    """The loaded model behind one batcher, plus the sampling defaults of `replica chat`."""

    def __init__(self, batcher: Batcher, sampling: Sampling, model_name: str, limits: Limits) -> None:
        self.batcher = batcher
        self.sampling = sampling
        self.model_name = model_name
        self.limits = limits

    def job(self, turns: list[dict], *, max_tokens=None, temperature=None, top_p=None, seed=None, stop=(), **hooks) -> Job:
        temperature = self.sampling.temperature if temperature is None else temperature
        sampling = replace(
            self.sampling,
            max_new_tokens=max_tokens or self.limits.default_max_tokens,
            do_sample=temperature > 0,
            temperature=temperature if temperature > 0 else 1.0,
            top_p=self.sampling.top_p if top_p is None else top_p,
            seed=secrets.randbelow(2**31) if seed is None else seed,
        )
        return Job(turns, sampling, tuple(stop), **hooks)

    async def reply(self, job: Job) -> Reply:
        return await asyncio.wrap_future(self.batcher.submit(job))


def create_app(engine: Engine, api_key: str | None, blind=None) -> FastAPI:
    app = FastAPI(title="Replica", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(Guard, api_key=api_key, max_body_bytes=engine.limits.max_body_bytes)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, err: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'][1:]) or 'body'}: {e['msg']}" for e in err.errors())
        return JSONResponse(openai_api.error_body(problems, "invalid_request_error"), status_code=400)

    @app.exception_handler(Busy)
    async def busy(request: Request, err: Busy) -> JSONResponse:
        body = openai_api.error_body("the server is busy: too many requests waiting, retry shortly", "server_busy")
        return JSONResponse(body, status_code=503, headers={"Retry-After": "1"})

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": engine.model_name, "object": "model", "created": 0, "owned_by": "replica"}]}

    @app.post("/v1/chat/completions")
    async def chat_completions(request: openai_api.ChatRequest):
        limit = request.token_limit()
        if limit is not None and limit > engine.limits.max_tokens:
            message = f"max_tokens must be at most {engine.limits.max_tokens} on this server"
            return JSONResponse(openai_api.error_body(message, "invalid_request_error", "max_tokens"), status_code=400)
        if len(request.stops()) > openai_api.MAX_STOPS:
            message = f"stop takes at most {openai_api.MAX_STOPS} strings"
            return JSONResponse(openai_api.error_body(message, "invalid_request_error", "stop"), status_code=400)
        settings = dict(max_tokens=limit, temperature=request.temperature, top_p=request.top_p, seed=request.seed, stop=request.stops())
        request_id = openai_api.completion_id()
        if not request.stream:
            reply = await engine.reply(engine.job(request.turns(), **settings))
            return openai_api.completion(reply, engine.model_name, request_id)
        include_usage = bool(request.stream_options and request.stream_options.include_usage)
        return StreamingResponse(
            open_stream(engine, request.turns(), settings, request_id, include_usage),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    @app.get("/")
    async def chat_page() -> FileResponse:
        return FileResponse(STATIC / "chat.html")

    if blind is not None:
        blind.add_routes(app, engine)
    return app


def open_stream(engine: Engine, turns: list[dict], settings: dict, request_id: str, include_usage: bool) -> AsyncIterator[str]:
    """Server-sent events of one reply; if the client goes away the job is cancelled and its row stops.

    The job is queued before the response starts, so a full queue is still a 503, not a broken stream.
    """
    loop = asyncio.get_running_loop()
    pieces: asyncio.Queue[str] = asyncio.Queue()
    gone = threading.Event()
    job = engine.job(
        turns,
        **settings,
        on_text=lambda text: loop.call_soon_threadsafe(pieces.put_nowait, text),
        cancelled=gone.is_set,
    )
    future = asyncio.wrap_future(engine.batcher.submit(job))
    return _events(engine.model_name, request_id, include_usage, pieces, future, gone)


async def _events(name, request_id, include_usage, pieces, future, gone) -> AsyncIterator[str]:
    try:
        yield _event(openai_api.chunk(request_id, name, {"role": "assistant", "content": ""}))
        while not (future.done() and pieces.empty()):
            getter = asyncio.ensure_future(pieces.get())
            await asyncio.wait({getter, future}, return_when=asyncio.FIRST_COMPLETED)
            if getter.done():
                yield _event(openai_api.chunk(request_id, name, {"content": getter.result()}))
            else:
                getter.cancel()
        reply = future.result()
        yield _event(openai_api.chunk(request_id, name, {}, openai_api.finish_reason(reply)))
        if include_usage:
            yield _event(openai_api.usage_chunk(request_id, name, reply))
        yield "data: [DONE]\n\n"
    finally:
        gone.set()  # the generation thread polls this every step: a departed client frees its row


def _event(payload: dict) -> str:
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"


class Guard:
    """ASGI middleware: API key on every path but /health (Bearer, or Basic with the key as password so browsers
    can open the pages), and a request-body size limit enforced while reading (bounded memory)."""

    def __init__(self, app, api_key: str | None, max_body_bytes: int) -> None:
        self.app = app
        self.api_key = api_key
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        if self.api_key is not None and scope["path"] not in PUBLIC_PATHS and not self._authorized(headers):
            body = openai_api.error_body("missing or wrong API key: send Authorization: Bearer <key>", "invalid_api_key")
            response = JSONResponse(body, status_code=401, headers={"WWW-Authenticate": 'Basic realm="replica"'})
            return await response(scope, receive, send)
        declared = headers.get(b"content-length", b"0")
        if not declared.isdigit() or int(declared) > self.max_body_bytes:
            return await self._too_large(scope, receive, send)
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            if size > self.max_body_bytes:
                return await self._too_large(scope, receive, send)
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        body, replayed = b"".join(chunks), False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    def _authorized(self, headers: dict[bytes, bytes]) -> bool:
        scheme, _, value = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
        if scheme.lower() == "bearer":
            offered = value.strip()
        elif scheme.lower() == "basic":
            try:
                offered = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")[2]
            except (binascii.Error, UnicodeDecodeError):
                return False
        else:
            return False
        return secrets.compare_digest(offered.encode("utf-8"), self.api_key.encode("utf-8"))

    async def _too_large(self, scope, receive, send) -> None:
        message = f"request body too large or without a valid Content-Length (limit {self.max_body_bytes} bytes)"
        await JSONResponse(openai_api.error_body(message, "invalid_request_error"), status_code=413)(scope, receive, send)
