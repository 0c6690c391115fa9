"""uvicorn's h11 HTTP protocol with a deadline for the request head.

Without it a client may open a socket and send a partial request line or headers and hold
the socket for as long as it likes (seen: 300 sockets held for 120 s). The request head
must arrive within ``HEAD_TIMEOUT`` seconds of the connection, and may be at most
``MAX_HEAD_BYTES`` (h11 answers 400 past that); keep-alive idling after a response is
uvicorn's own ``timeout_keep_alive``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from typing import Any
from urllib.parse import parse_qsl

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from . import ws_direct

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

    def handle_websocket_upgrade(self, event: h11.Request) -> None:
        path: str = self.scope["path"]
        direct = path.startswith(ws_direct.DOCUMENT_SOCKETS)
        opener = _find(self.app, "open_document_socket") if direct else None
        if opener is None:  # ``/sfu/...``, or an app without document sockets: ASGI
            super().handle_websocket_upgrade(event)
            return
        self.connections.discard(self)
        token = None
        for name, value in parse_qsl(self.scope["query_string"].decode("latin-1")):
            if name == "token":
                token = value  # the last one, as Starlette's query_params.get reads it
        ws_direct.accept(
            self.transport,
            self.headers,
            document=path[len(ws_direct.DOCUMENT_SOCKETS) :],
            token=token,
            address=self._client_host(),
            config=self.config,
            server_state=self.server_state,
            opener=opener,
            early=self.conn.trailing_data[0],
        )

    def _client_host(self) -> str:
        """The peer's address, or the one a trusted proxy forwarded (uvicorn's rule)."""
        host = self.client[0] if self.client else ""
        proxy = _find(self.app, "trusted_hosts") if self.config.proxy_headers else None
        if proxy is not None and host in proxy:
            forwarded = [v for n, v in self.headers if n == b"x-forwarded-for"]
            if forwarded:
                found, _ = proxy.get_trusted_client_address(b", ".join(forwarded).decode("latin1"))
                host = found or host
        return host

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


@functools.lru_cache(maxsize=32)  # the chain is fixed per server: walked once, not per upgrade
def _find(app: Any, attribute: str) -> Any:
    """``attribute`` of the first app in uvicorn's middleware chain that has it."""
    for _ in range(8):
        if app is None:
            return None
        found = getattr(app, attribute, None)
        if found is not None:
            return found
        app = getattr(app, "app", None)
    return None


class QuietServer(uvicorn.Server):
    """uvicorn's server with its housekeeping tick (the Date header, the exit check) once
    a second instead of ten times: on an idle node that tick was most of the wake-ups. A
    signal wakes the loop at once, so shutdown is as prompt as before."""

    _wake: asyncio.Event | None = None

    async def main_loop(self) -> None:
        self._wake = asyncio.Event()
        counter = 0
        should_exit = await self.on_tick(counter)
        while not should_exit:
            # uvicorn counts tenths of a second; every tenth tick refreshes the date.
            counter = (counter + 10) % 864000
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), 1.0)
            should_exit = await self.on_tick(counter)

    def handle_exit(self, sig: int, frame: Any) -> None:
        super().handle_exit(sig, frame)
        if self._wake is not None:  # a signal handler: the loop runs in this thread
            self._wake.set()
