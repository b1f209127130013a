"""The OpenAI chat-completions request schema, its mapping to Replica's turns, and response bodies.

Roles map as in `replica chat`: `user` is the other person ("them"), `assistant` is the replica ("me"); `system`
and `developer` messages are accepted and ignored (the replica imitates a person, it takes no instructions).
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from replica.inference.generation import Reply

ROLE_TO_TURN = {"user": "them", "assistant": "me"}
IGNORED_ROLES = ("system", "developer")
MAX_STOPS = 4


class TextPart(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["text"]
    text: str


class Message(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "\n".join(part.text for part in self.content)
        return self.content or ""


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")
    include_usage: bool = False


class ChatRequest(BaseModel):
    """Unknown OpenAI fields (frequency_penalty, user, ...) are accepted and ignored."""

    model_config = ConfigDict(extra="ignore")
    model: str | None = None
    messages: list[Message] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    seed: int | None = None
    stop: str | list[str] | None = None
    n: int = Field(default=1, ge=1, le=1)
    stream: bool = False
    stream_options: StreamOptions | None = None

    def turns(self) -> list[dict]:
        """The conversation as Replica context turns (system/developer messages dropped, empty ones skipped)."""
        return [
            {"role": ROLE_TO_TURN[m.role], "text": m.text()}
            for m in self.messages
            if m.role not in IGNORED_ROLES and m.text().strip()
        ]

    def stops(self) -> list[str]:
        stops = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        return [s for s in stops if s]

    def token_limit(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens


def error_body(message: str, kind: str, param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": param, "code": None}}


def completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


def usage(reply: Reply) -> dict[str, int]:
    completion = len(reply.token_ids)
    return {"prompt_tokens": reply.prompt_tokens, "completion_tokens": completion, "total_tokens": reply.prompt_tokens + completion}


def finish_reason(reply: Reply) -> str:
    return "length" if reply.finish_reason == "length" else "stop"


def completion(reply: Reply, model: str, request_id: str) -> dict[str, Any]:
    return {
        "id": request_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": reply.text},
                "finish_reason": finish_reason(reply),
                "logprobs": None,
            }
        ],
        "usage": usage(reply),
    }


def chunk(request_id: str, model: str, delta: dict[str, Any], reason: str | None = None) -> dict[str, Any]:
    return {
        "id": request_id,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": reason, "logprobs": None}],
    }


def usage_chunk(request_id: str, model: str, reply: Reply) -> dict[str, Any]:
    return {
        "id": request_id,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [],
        "usage": usage(reply),
    }
