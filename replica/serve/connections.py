"""Uvicorn's h11 protocol with a deadline for request headers, which uvicorn does not have.

A connection that opens (or finishes a response) and does not deliver a complete request line and headers within
the read timeout is closed, so half-open or trickling connections cannot hold connection slots for ever. The body
has its own deadline in the Guard middleware; idle keep-alive connections close after uvicorn's keep-alive timeout.
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.h11_impl import H11Protocol


class HeaderDeadlineProtocol(H11Protocol):
    """H11Protocol that closes a connection whose next request's headers are not complete in `header_timeout_s`."""

    header_timeout_s: float = 10.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_deadline()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm_header_deadline()

    def _arm_header_deadline(self) -> None:
        self.loop.call_later(self.header_timeout_s, self._header_deadline, self.cycle)

    def _header_deadline(self, cycle_when_armed) -> None:
        """No new request began since the deadline was armed: the headers never came, close the connection."""
        idle = self.cycle is None or self.cycle.response_complete
        if self.cycle is cycle_when_armed and idle and not self.transport.is_closing():
            self.transport.close()


def protocol_with_header_timeout(seconds: float) -> type[HeaderDeadlineProtocol]:
    return type("HeaderDeadlineProtocol", (HeaderDeadlineProtocol,), {"header_timeout_s": seconds})
