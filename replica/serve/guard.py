"""The ASGI middleware in front of every request: Host allow-list, API key, body size and read-time limits,
security headers on every response, and an OpenAI error object (one log line, no traceback) for anything that
raises."""

from __future__ import annotations

import asyncio
import base64
import binascii
import ipaddress
import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from replica.serve.openai_api import error_response

PUBLIC_PATHS = ("/health",)
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
WILDCARD_HOSTS = ("0.0.0.0", "::")  # listening on every interface
SECURITY_HEADERS = [
    (
        b"content-security-policy",
        (
            b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
            b"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
        ),
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
]
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HostPolicy:
    """Which Host headers are answered: a web page on another name that resolves to this machine (DNS
    rebinding) must not reach the replica. IP literals cannot be rebound; they are allowed when the server
    listens on every interface (its addresses are not known in advance)."""

    names: frozenset[str]  # lower-case host names and addresses, without port
    any_ip: bool = False

    def allows(self, header: bytes | None) -> bool:
        if not header:
            return False
        host = header.decode("latin-1").strip().lower()
        if host.startswith("["):
            host = host[1 : host.find("]")] if "]" in host else ""
        elif host.count(":") == 1:
            host = host.partition(":")[0]
        if host in self.names:
            return True
        try:
            ipaddress.ip_address(host)
        except ValueError:
            return False
        return self.any_ip


def host_policy(host: str, allowed: Sequence[str]) -> HostPolicy:
    """Host headers a server listening on `host` answers: loopback names, the address it listens on, any IP address
    when it listens on every interface, and the `allowed` names (--allowed-host)."""
    bound = host.strip("[]").lower()
    names = {*LOOPBACK_HOSTS, bound, *(name.strip().lower() for name in allowed)}
    return HostPolicy(frozenset(names), any_ip=bound in WILDCARD_HOSTS)


class Guard:
    """ASGI middleware: Host allow-list; API key on every path but /health (Bearer, or Basic with the key as
    password so browsers can open the pages); a request-body size limit enforced while reading (bounded memory)
    and a deadline for the body; security headers on every response; a 500 error object for any exception."""

    def __init__(self, app, api_key: str | None, hosts: HostPolicy, max_body_bytes: int, read_timeout_s: float) -> None:
        self.app = app
        self.api_key = None if api_key is None else api_key.encode("utf-8")
        self.hosts = hosts
        self.max_body_bytes = max_body_bytes
        self.read_timeout_s = read_timeout_s

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = False

        async def send_secured(message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message = {**message, "headers": [*message.get("headers", []), *SECURITY_HEADERS]}
            await send(message)

        try:
            await self._guarded(scope, receive, send_secured)
        except Exception as err:  # noqa: BLE001 - one line, never a traceback (it could hold request data)
            log.error("request failed (%s)", type(err).__name__)
            if not started:
                await error_response(500, "internal error while answering this request", "server_error")(scope, receive, send_secured)

    async def _guarded(self, scope, receive, send) -> None:
        headers = dict(scope["headers"])
        if not self.hosts.allows(headers.get(b"host")):
            message = "Host header not allowed: open the server by its address, or start it with --allowed-host NAME"
            return await error_response(400, message, "invalid_request_error")(scope, receive, send)
        if self.api_key is not None and scope["path"] not in PUBLIC_PATHS and not self._authorized(headers):
            message = "missing or wrong API key: send Authorization: Bearer <key>"
            response = error_response(401, message, "invalid_api_key", headers={"WWW-Authenticate": 'Basic realm="replica", charset="UTF-8"'})
            return await response(scope, receive, send)
        declared = headers.get(b"content-length", b"0")
        if not declared.isdigit() or int(declared) > self.max_body_bytes:
            return await self._too_large(scope, receive, send)
        try:
            body = await self._read_body(receive)
        except _TooLarge:
            return await self._too_large(scope, receive, send)
        except TimeoutError:
            message = f"the request body did not arrive within {self.read_timeout_s:g} s"
            return await error_response(408, message, "invalid_request_error", headers={"Connection": "close"})(scope, receive, send)
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _read_body(self, receive) -> bytes:
        """The whole body; raises _TooLarge above the size limit, TimeoutError if not complete by the deadline."""
        chunks, size = [], 0
        async with asyncio.timeout(self.read_timeout_s):
            while True:
                message = await receive()
                if message["type"] != "http.request":
                    break
                size += len(message.get("body", b""))
                if size > self.max_body_bytes:
                    raise _TooLarge
                chunks.append(message.get("body", b""))
                if not message.get("more_body"):
                    break
        return b"".join(chunks)

    def _authorized(self, headers: dict[bytes, bytes]) -> bool:
        """Compares bytes: a UTF-8 key matches the UTF-8 bytes a client sends (Bearer or Basic password)."""
        scheme, _, value = headers.get(b"authorization", b"").partition(b" ")
        if scheme.lower() == b"bearer":
            offered = value.strip()
        elif scheme.lower() == b"basic":
            try:
                offered = base64.b64decode(value.strip(), validate=True).partition(b":")[2]
            except binascii.Error:
                return False
        else:
            return False
        return secrets.compare_digest(offered, self.api_key)

    async def _too_large(self, scope, receive, send) -> None:
        message = f"request body too large or without a valid Content-Length (limit {self.max_body_bytes} bytes)"
        await error_response(413, message, "invalid_request_error")(scope, receive, send)


class _TooLarge(Exception):
    """The body passed the size limit while being read."""
