"""The OpenAI chat-completions request schema, its mapping to Replica's turns, and response bodies.

Roles map as in `replica chat`: `user` is the other person ("them"), `assistant` is the replica ("me"); `system`
and `developer` messages are accepted and ignored (the replica imitates a person, it takes no instructions).
"""

from __future__ import annotations

import time
import uuid
from typing import Annotated, Any, Literal

from fastapi.responses import JSONResponse
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from replica.inference.jobs import Reply

ROLE_TO_TURN = {"user": "them", "assistant": "me"}
IGNORED_ROLES = ("system", "developer")
MAX_STOPS = 4
STRICT = ConfigDict(extra="ignore", strict=True)  # `max_tokens: true` or `"64"` is an error, not a silent cast


def _encodable(text: str) -> str:
    """Text the tokenizer can encode: a lone surrogate ("\\ud800" in JSON) is rejected here, naming the field."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("holds a lone surrogate (invalid Unicode); send valid UTF-8 text") from None
    return text


Text = Annotated[str, AfterValidator(_encodable)]


class TextPart(BaseModel):
    model_config = STRICT
    type: Literal["text"]
    text: Text


class Message(BaseModel):
    model_config = STRICT
    role: Literal["system", "developer", "user", "assistant"]
    content: Text | list[TextPart] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "\n".join(part.text for part in self.content)
        return self.content or ""


class StreamOptions(BaseModel):
    model_config = STRICT
    include_usage: bool = False


class Conversation(BaseModel):
    """The conversation a request is about: its messages, who the reply is written to and whether it is a group
    chat; `relationship` and `group` are Replica's own fields (the `openai` client sends them with `extra_body`)."""

    model_config = STRICT
    messages: list[Message] = Field(min_length=1)
    relationship: str | None = None  # who the reply is written to (one of the run's labels)
    group: bool | None = None  # a group chat (with the label's voice); null: whether the label is `group`

    def turns(self) -> list[dict]:
        """The conversation as Replica context turns (system/developer messages dropped, empty ones skipped)."""
        return [
            {"role": ROLE_TO_TURN[m.role], "text": m.text()}
            for m in self.messages
            if m.role not in IGNORED_ROLES and m.text().strip()
        ]


class ChatRequest(Conversation):
    """Unknown OpenAI fields (frequency_penalty, user, ...) are accepted and ignored."""

    model: str | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    seed: int | None = None
    stop: Text | list[Text] | None = None
    n: int = Field(default=1, ge=1, le=1)
    stream: bool = False
    stream_options: StreamOptions | None = None

    def stops(self) -> list[str]:
        stops = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        return [s for s in stops if s]

    def token_limit(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens


def error_body(message: str, kind: str, param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": param, "code": None}}


def error_response(status: int, message: str, kind: str, param: str | None = None, headers: dict | None = None) -> JSONResponse:
    """An HTTP response holding an OpenAI error object."""
    return JSONResponse(error_body(message, kind, param), status_code=status, headers=headers)


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
