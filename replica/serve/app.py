"""The FastAPI app: OpenAI-compatible endpoints, /v1/feedback, /health, the web chat (/) and the blind test (/blind).

Nothing of a conversation is logged: request bodies never reach a log line, and validation errors name the field,
never its value. Two things are written: a blind-test guess (no text), and the feedback its owner sends to
/v1/feedback (masked, into the served folder; never answered back by any endpoint). Every error, whatever raised
it, is an OpenAI error object; a request's failure is its own (see batcher.py).
"""

from __future__ import annotations

import asyncio
import json
import secrets
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from replica.errors import ReplicaInputError
from replica.inference.jobs import Busy, GenerationFailed, Job, Outcome, Sampling
from replica.model.formatting import choose_relationship
from replica.prepare.relationships import GROUP
from replica.serve import openai_api
from replica.serve.feedback import FeedbackNotStored, FeedbackRequest, FeedbackWriter
from replica.serve.guard import Guard, HostPolicy
from replica.serve.openai_api import error_response

STATIC = Path(__file__).with_name("static")
MIN_TEMPERATURE = 1e-3  # below this, sampling divides logits into inf/nan: such a temperature means greedy
BATCH_HEADER = "X-Replica-Batch"  # on non-streaming replies: how many requests shared the batched generate


class Scheduler(Protocol):
    def submit(self, job: Job) -> Future:
        """Queue `job`; the future resolves to an Outcome. Raises Busy when too many jobs wait."""


class UnknownRelationship(ValueError):
    """A request named a relationship label the run does not know (the message lists the valid ones, never the value)."""


@dataclass(frozen=True)
class Limits:
    max_body_bytes: int
    max_tokens: int  # largest max_tokens a request may ask for
    default_max_tokens: int
    read_timeout_s: float  # a request body must arrive within this many seconds of its headers


class Service:
    """What the endpoints talk to: the scheduler in front of the generation engine (transformers' batcher or
    llama.cpp's continuous batching; both `submit` a job and return a future Outcome), the sampling defaults and
    the run's labels."""

    def __init__(
        self, batcher: Scheduler, sampling: Sampling, model_name: str, limits: Limits,
        tokenize: Callable[[list[dict], str | None, bool], list[int]], labels: Sequence[str] = (),
    ) -> None:
        self.batcher = batcher
        self.sampling = sampling
        self.model_name = model_name
        self.limits = limits
        self.tokenize = tokenize  # the prompt a job will get: run before it joins a batch, so bad text fails alone
        self.labels = list(labels)  # relationship labels a reply can be written for, most common first; none: old run

    def relationship(self, label: str | None) -> str | None:
        """The label a reply is written for: `label` if the run knows it, the most common one if None."""
        try:
            return choose_relationship(label, self.labels, bool(self.labels))
        except ReplicaInputError:
            if not self.labels:
                raise UnknownRelationship("relationship: this run was trained without relationship labels (data.relationships); leave the field out") from None
            raise UnknownRelationship(f"relationship: unknown label; this run knows {', '.join(self.labels)} (default {self.labels[0]})") from None

    def models(self) -> list[dict[str, Any]]:
        """`/v1/models`: the one served model, with the relationship labels a request may name."""
        default = self.labels[0] if self.labels else None
        model = {"id": self.model_name, "object": "model", "created": 0, "owned_by": "replica"}
        return [{**model, "relationships": self.labels, "default_relationship": default}]

    def job(self, turns: list[dict], *, max_tokens=None, temperature=None, top_p=None, seed=None, stop=(), relationship=None, group=None, **hooks) -> Job:
        """A job with the request's settings (the server's defaults for those it names none of); `group` defaults to
        whether the label is `group`."""
        # a request's temperature 0 (OpenAI's way to ask for greedy) means do_sample=False, as the server's own
        # greedy default does; no temperature: the server's default
        sample = self.sampling.do_sample if temperature is None else temperature >= MIN_TEMPERATURE
        sampling = replace(
            self.sampling,
            max_new_tokens=max_tokens or self.limits.default_max_tokens,
            do_sample=sample,
            temperature=temperature if sample and temperature is not None else self.sampling.temperature,
            top_p=self.sampling.top_p if top_p is None else top_p,
            seed=secrets.randbelow(2**31) if seed is None else seed,
        )
        return Job(turns, sampling, tuple(stop), **hooks, relationship=relationship, group=group_of(relationship, group))

    async def reply(self, job: Job) -> Outcome:
        return await asyncio.wrap_future(self.batcher.submit(job))


def create_app(engine: Service, api_key: str | None, hosts: HostPolicy, blind=None, feedback: FeedbackWriter | None = None) -> FastAPI:
    app = FastAPI(title="Replica", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(Guard, api_key=api_key, hosts=hosts, max_body_bytes=engine.limits.max_body_bytes, read_timeout_s=engine.limits.read_timeout_s)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, err: RequestValidationError) -> JSONResponse:
        problems: dict[str, str] = {}  # field -> its first problem (a union field reports one per alternative)
        for e in err.errors():
            problems.setdefault(_field(e), e["msg"].removeprefix("Value error, "))
        message = "; ".join(f"{field}: {problem}" for field, problem in problems.items())
        return error_response(400, message, "invalid_request_error", next(iter(problems), None))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, err: HTTPException) -> JSONResponse:
        kind = "not_found_error" if err.status_code == 404 else "invalid_request_error"
        return error_response(err.status_code, str(err.detail), kind, headers=err.headers)

    @app.exception_handler(Busy)
    async def busy(request: Request, err: Busy) -> JSONResponse:
        return error_response(503, "the server is busy: too many requests waiting, retry shortly", "server_busy", headers={"Retry-After": "1"})

    @app.exception_handler(GenerationFailed)
    async def failed(request: Request, err: GenerationFailed) -> JSONResponse:
        return error_response(500, str(err), "server_error")

    @app.exception_handler(UnknownRelationship)
    async def unknown_relationship(request: Request, err: UnknownRelationship) -> JSONResponse:
        return error_response(400, str(err), "invalid_request_error", "relationship")

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": engine.models()}

    @app.post("/v1/chat/completions")
    async def chat_completions(chat: openai_api.ChatRequest, request: Request):
        limit = chat.token_limit()
        if limit is not None and limit > engine.limits.max_tokens:
            return error_response(400, f"max_tokens must be at most {engine.limits.max_tokens} on this server", "invalid_request_error", "max_tokens")
        if len(chat.stops()) > openai_api.MAX_STOPS:
            return error_response(400, f"stop takes at most {openai_api.MAX_STOPS} strings", "invalid_request_error", "stop")
        relationship = engine.relationship(chat.relationship)
        group = group_of(relationship, chat.group)
        turns = chat.turns()
        try:
            engine.tokenize(turns, relationship, group)
        except Exception as err:  # noqa: BLE001 - text the tokenizer refuses fails this request only
            return error_response(400, f"messages: the text cannot be tokenized ({type(err).__name__})", "invalid_request_error", "messages")
        settings = dict(max_tokens=limit, temperature=chat.temperature, top_p=chat.top_p, seed=chat.seed, stop=chat.stops(),
                        relationship=relationship, group=group)
        request_id = openai_api.completion_id()
        if chat.stream:
            include_usage = bool(chat.stream_options and chat.stream_options.include_usage)
            return StreamingResponse(
                open_stream(engine, turns, settings, request_id, include_usage),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            )
        gone = threading.Event()
        outcome = await reply_unless_gone(engine, engine.job(turns, **settings, cancelled=gone.is_set), request, gone)
        if outcome is None:
            return error_response(499, "the client closed the connection", "invalid_request_error")  # nobody reads this
        body = openai_api.completion(outcome.reply, engine.model_name, request_id)
        return JSONResponse(body, headers={BATCH_HEADER: str(outcome.batch_size)})

    @app.get("/")
    async def chat_page() -> FileResponse:
        return FileResponse(STATIC / "chat.html")

    if blind is not None:
        blind.add_routes(app, engine)
    if feedback is not None:
        add_feedback_route(app, engine, feedback)
    return app


def add_feedback_route(app: FastAPI, engine: Service, feedback: FeedbackWriter) -> None:
    """`POST /v1/feedback`: 201 with the entry's id, nothing of the entry (its label is read as chat completions
    read it: the run's most common one when the body names none)."""

    @app.exception_handler(FeedbackNotStored)
    async def not_stored(request: Request, err: FeedbackNotStored) -> JSONResponse:
        return error_response(500, str(err), "server_error")

    @app.post("/v1/feedback", status_code=201)
    async def add_feedback(body: FeedbackRequest) -> JSONResponse:
        problem = body.problem()
        if problem is not None:
            return error_response(400, problem[1], "invalid_request_error", problem[0])
        relationship = engine.relationship(body.relationship)
        group = group_of(relationship, body.group)
        entry = await feedback.add(body.turns(), body.reply, body.correction, relationship, group)
        return JSONResponse({"id": entry, "object": "feedback"}, status_code=201)


def group_of(relationship: str | None, group: bool | None) -> bool:
    """Whether a conversation is a group chat: as the request says, else whether its label is `group`."""
    return relationship == GROUP if group is None else group


def _field(problem: dict) -> str:
    """`messages.0.content` for a validation problem: body field names and indices, no union-branch labels."""
    if problem["type"] == "json_invalid":
        return "body"
    parts = [str(p) for p in problem["loc"][1:] if isinstance(p, int) or str(p).isidentifier()]
    return ".".join(parts) or "body"


async def reply_unless_gone(engine: Service, job: Job, request: Request, gone: threading.Event) -> Outcome | None:
    """The job's outcome; None if the client disconnected first (then its job is cancelled and its row stops)."""
    future = asyncio.wrap_future(engine.batcher.submit(job))
    watcher = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({future, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
    if future.done():
        return future.result()
    gone.set()
    future.add_done_callback(_settled)
    return None


async def _disconnected(request: Request) -> None:
    """Returns when the client goes away (the body was read already, so the next message is the disconnect)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


def _settled(future: asyncio.Future) -> None:
    if not future.cancelled():
        future.exception()  # an abandoned job's error is nobody's: retrieve it so asyncio does not log it


def open_stream(engine: Service, turns: list[dict], settings: dict, request_id: str, include_usage: bool) -> AsyncIterator[str]:
    """Server-sent events of one reply; if the client goes away the job is cancelled and its row stops.

    The job is queued before the response starts, so a full queue is still a 503, not a broken stream. A job
    that fails ends its stream with an OpenAI error event and `[DONE]`.
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
    future.add_done_callback(_settled)
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
        try:
            reply = future.result().reply
        except GenerationFailed as err:
            yield _event(openai_api.error_body(str(err), "server_error"))
            yield "data: [DONE]\n\n"
            return
        yield _event(openai_api.chunk(request_id, name, {}, openai_api.finish_reason(reply)))
        if include_usage:
            yield _event(openai_api.usage_chunk(request_id, name, reply))
        yield "data: [DONE]\n\n"
    finally:
        gone.set()  # the generation thread polls this every step: a departed client frees its row


def _event(payload: dict) -> str:
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"
