"""uvicorn's h11 HTTP protocol with a deadline for the request head.

Without it a client may open a socket and send a partial request line or headers and hold
the socket for as long as it likes (seen: 300 sockets held for 120 s). The request head
must arrive within ``HEAD_TIMEOUT`` seconds of the connection, and may be at most
``MAX_HEAD_BYTES`` (h11 answers 400 past that); keep-alive idling after a response is
uvicorn's own ``timeout_keep_alive``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

HEAD_TIMEOUT = 10.0
MAX_HEAD_BYTES = 8192

log = logging.getLogger("inkroom.server.http")


class InkroomH11Protocol(H11Protocol):
    """Closes connections whose request head does not arrive in time."""

    head_timeout = HEAD_TIMEOUT

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[arg-type]
        self._head_deadline: asyncio.TimerHandle | None = asyncio.get_running_loop().call_later(
            self.head_timeout, self._head_timed_out
        )

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.scope is not None and self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def connection_lost(self, exc: Exception | None) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None
        super().connection_lost(exc)

    def _head_timed_out(self) -> None:
        self._head_deadline = None
        if self.scope is None and not self.transport.is_closing():
            log.info("request head timed out; closing", extra={"client": str(self.client)})
            self.transport.close()


def uvicorn_options(**overrides: Any) -> dict[str, Any]:
    """The HTTP settings every Inkroom server runs with."""
    return {
        "http": InkroomH11Protocol,
        "h11_max_incomplete_event_size": MAX_HEAD_BYTES,
        **overrides,
    }
