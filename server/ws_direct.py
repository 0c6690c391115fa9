"""A document's socket served straight from the HTTP upgrade, without ASGI in between.

Through ASGI every connection cost a second parse of its request (websockets re-reads
what h11 had parsed), a scope, an ASGI task with four framework frames suspended for the
connection's life, and uvicorn's protocol object (1.6 KB). The y-websocket endpoint needs
none of it: it reads the path, the token and two headers, then hands messages both ways.
Here the upgrade is answered from h11's parsed headers (:func:`handshake`) and the socket
becomes a :class:`DirectSocket`, which is the session's :class:`collab.ports.Connection`
itself. Frames are still parsed by websockets' sans-IO protocol (limits, fragmentation,
compression and the closing handshake as before); what the server sends is written to
the transport at once when it can take it (:meth:`DirectSocket.send_nowait`), framed once
for every reader, and keep-alive pings come from the loop's one shared timer.

Other WebSocket routes (``/sfu/...``) keep the ASGI path.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import time
from collections.abc import Callable, Coroutine, Sequence
from http import HTTPStatus
from typing import Any, Final

from websockets.exceptions import InvalidHeader, InvalidState, NegotiationError
from websockets.extensions.permessage_deflate import PerMessageDeflate
from websockets.frames import Frame, Opcode
from websockets.headers import build_extension, parse_extension
from websockets.protocol import Protocol, Side, State
from websockets.utils import accept_key

from collab.errors import UnsupportedData
from collab.ports import Disconnected

from .ws_protocol import (
    COMPRESS_MIN_BYTES,
    INBOX_BYTES,
    PING_HEADER,
    WIRE_CACHE,
    Flag,
    Keepalive,
    LargeMessageDeflateFactory,
    binary_frame,
    keepalive_for,
)

log = logging.getLogger("inkroom.server.ws")

# The path under which the documents' sockets live; InkroomApp serves the same path
# through ASGI for servers that do not use Inkroom's HTTP protocol (the test client).
DOCUMENT_SOCKETS: Final = "/ws/"
# Negotiates permessage-deflate; it holds only its settings, so one serves every upgrade.
_DEFLATE: Final = LargeMessageDeflateFactory()
# How long a close we sent may wait for the peer's reply before the socket is aborted.
CLOSE_TIMEOUT: Final = 10.0
# Close reasons are at most 123 bytes (RFC 6455 5.5: a control frame's payload is 125).
_MAX_REASON: Final = 123


class HandshakeRefused(Exception):
    """An upgrade request that is not a valid WebSocket opening handshake."""

    def __init__(self, status: int, message: str, headers: bytes = b"") -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers

    def response(self) -> bytes:
        body = f"Failed to open a WebSocket connection: {self}.\n".encode()
        return (
            f"HTTP/1.1 {self.status} {HTTPStatus(self.status).phrase}\r\n".encode()
            + self.headers
            + b"Content-Type: text/plain; charset=utf-8\r\nConnection: close\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )


def handshake(
    headers: Sequence[tuple[bytes, bytes]], compression: bool
) -> tuple[bytes, PerMessageDeflate | None]:
    """The 101 response to an upgrade request (RFC 6455 4.2), and the compression it
    agreed to, from h11's parsed headers (names in lower case).

    Raises:
        HandshakeRefused: the request is not a valid opening handshake.
    """
    key = version = None
    upgrade = connection = False
    offers: list[str] = []
    for name, value in headers:
        if name == b"sec-websocket-key":
            if key is not None:
                raise HandshakeRefused(400, "more than one Sec-WebSocket-Key header")
            key = value
        elif name == b"sec-websocket-version":
            version = value
        elif name == b"upgrade":
            upgrade = upgrade or value.strip().lower() == b"websocket"
        elif name == b"connection":
            connection = connection or any(
                token.strip().lower() == b"upgrade" for token in value.split(b",")
            )
        elif name == b"sec-websocket-extensions":
            offers.append(value.decode("latin-1"))
    if not upgrade:
        raise HandshakeRefused(400, 'missing "Upgrade: websocket" header')
    if not connection:
        raise HandshakeRefused(400, 'missing "Connection: Upgrade" header')
    if version != b"13":
        raise HandshakeRefused(
            426, "unsupported WebSocket version", b"Sec-WebSocket-Version: 13\r\n"
        )
    try:
        valid_key = key is not None and len(base64.b64decode(key, validate=True)) == 16
    except (binascii.Error, ValueError):
        valid_key = False
    if not valid_key:
        raise HandshakeRefused(400, "invalid Sec-WebSocket-Key header")
    assert key is not None
    response = (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + accept_key(key.decode("ascii")).encode() + b"\r\n"
    )
    negotiated = _negotiate(offers) if compression and offers else None
    if negotiated is None:
        return response + b"\r\n", None
    agreed, extension = negotiated
    return response + b"Sec-WebSocket-Extensions: " + agreed.encode() + b"\r\n\r\n", extension


def _negotiate(offers: list[str]) -> tuple[str, PerMessageDeflate] | None:
    """The first acceptable permessage-deflate offer, as websockets negotiates it."""
    for header in offers:
        try:
            parsed = parse_extension(header)
        except InvalidHeader:
            raise HandshakeRefused(400, "invalid Sec-WebSocket-Extensions header") from None
        for name, params in parsed:
            if name != _DEFLATE.name:
                continue
            try:
                agreed, extension = _DEFLATE.process_request_params(params, [])
            except NegotiationError:
                continue
            return build_extension([(name, agreed)]), extension
    return None


# A new socket's session: ``(socket, document, token)``; owned by uvicorn's task set.
Opener = Callable[["DirectSocket", str, "str | None"], Coroutine[Any, Any, None]]


class DirectSocket(asyncio.Protocol):
    """One accepted WebSocket: the transport's protocol and the session's Connection.

    Received messages go to the session's listener from :meth:`data_received`; until it
    listens they wait here, and past ``INBOX_BYTES`` of them the socket stops being read
    (a client cannot grow this before it is authorised).
    """

    __slots__ = (
        "_close_timer",
        "_connections",
        "_early",
        "_early_bytes",
        "_ended",
        "_keepalive",
        "_lost",
        "_on_end",
        "_on_message",
        "_parts",
        "_read_paused",
        "_text",
        "address",
        "close_sent",
        "conn",
        "device",
        "keepalive_slot",
        "last_heard",
        "pending_ping_payload",
        "transport",
        "writable",
    )

    # How long a closing socket may take to be closed by its peer (after our close frame)
    # or to take what is left in its buffer (after we close it) before it is aborted.
    close_timeout: float = CLOSE_TIMEOUT

    def __init__(
        self,
        transport: asyncio.Transport,
        connections: set[Any],
        *,
        max_size: int | None,
        extension: PerMessageDeflate | None,
        device: str,
        address: str,
    ) -> None:
        self.transport = transport
        self.conn = Protocol(Side.SERVER, state=State.OPEN, max_size=max_size)
        if extension is not None:
            self.conn.extensions = [extension]
        self.writable = Flag()
        self.device = device
        self.address = address
        self.close_sent = False
        self.keepalive_slot: set[Any] | None = None
        self.last_heard = time.monotonic()
        self.pending_ping_payload: bytes | None = None
        self._connections = connections
        self._keepalive: Keepalive | None = None
        self._close_timer: asyncio.TimerHandle | None = None
        self._lost = False
        self._read_paused = False
        self._parts: list[bytes] | None = None  # a fragmented message so far
        self._text = False
        self._on_message: Callable[[bytes], None] | None = None
        self._on_end: Callable[[BaseException], None] | None = None
        self._early: list[bytes] | None = None  # received before the session listened
        self._early_bytes = 0
        self._ended: BaseException | None = None
        connections.add(self)

    # -- the transport's callbacks -----------------------------------------------------

    def data_received(self, data: bytes) -> None:
        self.last_heard = time.monotonic()
        conn = self.conn
        conn.receive_data(data)
        for event in conn.events_received():
            if type(event) is Frame:  # a server-side Protocol only ever yields frames
                self._frame(event)
        self._flush()  # pongs, close replies, and the close frame a parser error calls for
        if conn.parser_exc is not None:  # 1002, 1007 or 1009: the connection is over
            close = conn.close_sent
            self.close_sent = True
            self._end(Disconnected(close.code if close is not None else None))
            self._drop()

    def eof_received(self) -> None:
        return None  # the transport closes; ``connection_lost`` follows

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        if self._keepalive is not None:
            self._keepalive.remove(self)
        self._connections.discard(self)
        self.writable.set()  # wakes a writer waiting for a drain that will never come
        if self._close_timer is not None:
            self._close_timer.cancel()
            self._close_timer = None
        received = self.conn.close_rcvd
        self._end(Disconnected(received.code if received is not None else 1006))

    def pause_writing(self) -> None:
        self.writable.clear()

    def resume_writing(self) -> None:
        self.writable.set()

    def shutdown(self) -> None:
        """The server is stopping (uvicorn calls this on every open connection)."""
        if not self.close_sent and not self._lost:
            self._send_close(1012, "server restarting")
        self._end(Disconnected(1012))
        self._drop()

    # -- frames ------------------------------------------------------------------------

    def _frame(self, frame: Frame) -> None:
        opcode = frame.opcode
        if opcode is Opcode.BINARY or opcode is Opcode.TEXT:
            self._text = opcode is Opcode.TEXT
            if frame.fin:
                self._message(frame.data)
            else:
                self._parts = [bytes(frame.data)]
        elif opcode is Opcode.CONT:
            parts = self._parts
            assert parts is not None  # websockets refuses a continuation of nothing
            parts.append(bytes(frame.data))
            if frame.fin:
                self._parts = None
                self._message(b"".join(parts))
        elif opcode is Opcode.PONG:
            if self.pending_ping_payload is not None and frame.data == self.pending_ping_payload:
                self.pending_ping_payload = None
                if self._keepalive is not None:
                    self._keepalive.answered(self)
        elif opcode is Opcode.CLOSE:
            # websockets has queued the reply to a close we did not start.
            self._flush()
            if self._close_timer is not None:
                self._close_timer.cancel()
                self._close_timer = None
            received = self.conn.close_rcvd
            self._end(Disconnected(received.code if received is not None else None))
            self._drop()
        # A ping's pong is queued by websockets and written by ``_flush``.

    def _message(self, data: bytes | bytearray | memoryview) -> None:
        if self.close_sent:
            return  # closing: what the peer sends meanwhile is not read
        if self._text:
            self._end(UnsupportedData("text frames are not part of the y-websocket protocol"))
            return
        message = data if type(data) is bytes else bytes(data)
        listener = self._on_message
        if listener is not None:
            listener(message)
            return
        if self._early is None:
            self._early = []
        self._early.append(message)
        self._early_bytes += len(message)
        if self._early_bytes > INBOX_BYTES and not self._read_paused:
            self._read_paused = True
            self.transport.pause_reading()

    def _end(self, exc: BaseException) -> None:
        if self._ended is not None:
            return
        self._ended = exc
        if self._on_end is not None:
            self._on_end(exc)

    def _flush(self) -> None:
        out = self.conn.data_to_send()
        if out:
            data = b"".join(out)
            if data and not self.transport.is_closing():
                self.transport.write(data)

    # -- collab.ports.Connection ---------------------------------------------------------

    def listen(
        self, on_message: Callable[[bytes], None], on_end: Callable[[BaseException], None]
    ) -> bool:
        early, self._early, self._early_bytes = self._early, None, 0
        for message in early or ():
            on_message(message)
        self._on_message, self._on_end = on_message, on_end
        if self._ended is not None:
            on_end(self._ended)
        if self._read_paused:
            self._read_paused = False
            self.transport.resume_reading()
        return True

    async def receive(self) -> bytes:
        # The port reads with ``receive`` only from transports whose ``listen`` says False.
        raise RuntimeError("a DirectSocket hands its messages over through listen()")

    async def drained(self) -> None:
        await self.writable.wait()  # set again on resume, and on connection loss
        if self._closing():
            raise Disconnected(None)

    async def send(self, data: bytes) -> None:
        await self.writable.wait()
        if self._closing():
            raise Disconnected(None)
        self.transport.write(self._wire(data))

    async def close(self, code: int, reason: str = "") -> None:
        if self.close_sent or self._lost:
            return
        self._send_close(code, reason)
        if self._read_paused:  # the peer's close reply must be read
            self._read_paused = False
            self.transport.resume_reading()
        self._abort_later()  # the wait for the peer's reply

    def _send_close(self, code: int, reason: str) -> None:
        encoded = reason.encode()[:_MAX_REASON].decode(errors="ignore")
        try:
            self.conn.send_close(code, encoded)
        except InvalidState:
            return
        self.close_sent = True
        self._flush()

    def send_nowait(self, data: bytes) -> bool:
        """Writes ``data`` as one binary message now; ``False`` if it would have to wait
        (the peer reads slowly and the transport is paused, or the socket is closing)."""
        if not self.writable.is_set() or self._closing():
            return False
        self.transport.write(self._wire(data))
        return True

    def send_many_nowait(self, data: Sequence[bytes]) -> bool:
        """Writes ``data`` as binary messages, in order, in one transport write; ``False``
        (nothing written) if it would have to wait."""
        if not self.writable.is_set() or self._closing():
            return False
        self.transport.write(b"".join([self._wire(message) for message in data]))
        return True

    def _closing(self) -> bool:
        return self.close_sent or self._lost or self.transport.is_closing()

    def _wire(self, data: bytes) -> bytes:
        # A small message (a stroke, presence) is framed plain; a large one is compressed
        # if compression was agreed, and framed once for every socket (WireCache).
        if len(data) < COMPRESS_MIN_BYTES:
            return binary_frame(data)
        if self.conn.extensions:
            return WIRE_CACHE.frame(self.conn, data)
        return WIRE_CACHE.plain(data)

    # -- keep-alive through the loop's shared Keepalive --------------------------------

    def start_keepalive(self, interval: float | None, timeout: float | None) -> None:
        if interval is not None and interval > 0:
            self._keepalive = keepalive_for(interval, timeout or interval)
            self._keepalive.add(self)

    def ping(self, payload: bytes, now: float) -> bool:
        if self._closing():
            return False
        self.pending_ping_payload = payload
        self.transport.write(PING_HEADER + payload)
        return True

    def keepalive_timeout(self) -> None:
        self.pending_ping_payload = None
        if self._closing():
            return
        self.conn.fail(1011, "keepalive ping timeout")
        self._flush()
        self.close_sent = True
        self._drop()

    def _drop(self) -> None:
        """Closes the transport once what it holds is written, and aborts it if that has
        not happened within :attr:`close_timeout`: a peer that stopped reading would
        otherwise hold the socket and its buffer for as long as its TCP stack answers."""
        self.transport.close()
        self._abort_later()

    def _abort_later(self) -> None:
        # ``abort`` drops what the peer never took: a peer that does not read cannot hold
        # the socket past ``close_timeout``. One timer, whichever wait armed it first.
        if self._close_timer is None and not self._lost:
            self._close_timer = asyncio.get_running_loop().call_later(
                self.close_timeout, self.transport.abort
            )

    def app_ended(self, task: asyncio.Task[None]) -> None:
        """The session is over: a socket it did not close is dropped (as uvicorn does)."""
        if not task.cancelled() and task.exception() is not None:
            log.error("document socket failed", exc_info=task.exception())
        if self._close_timer is None and not self.transport.is_closing():
            self._drop()


def accept(
    transport: asyncio.Transport,
    headers: Sequence[tuple[bytes, bytes]],
    *,
    document: str,
    token: str | None,
    address: str,
    config: Any,
    server_state: Any,
    opener: Opener,
    early: bytes = b"",
) -> None:
    """Answers an upgrade to ``/ws/{document}`` and starts its session under uvicorn's
    task set (so a graceful shutdown waits for it); a bad handshake gets its 4xx."""
    try:
        response, extension = handshake(headers, config.ws_per_message_deflate)
    except HandshakeRefused as exc:
        log.info("websocket handshake refused: %s", exc, extra={"status": exc.status})
        transport.write(exc.response())
        transport.close()
        return
    device = ""
    for name, value in headers:
        if name == b"user-agent":
            device = value.decode("latin-1")[:255]
    socket = DirectSocket(
        transport,
        server_state.connections,
        max_size=config.ws_max_size,
        extension=extension,
        device=device,
        address=address,
    )
    transport.set_protocol(socket)
    transport.write(response)
    socket.start_keepalive(config.ws_ping_interval, config.ws_ping_timeout)
    task = asyncio.get_running_loop().create_task(opener(socket, document, token))
    server_state.tasks.add(task)
    task.add_done_callback(server_state.tasks.discard)
    task.add_done_callback(socket.app_ended)
    if early:
        socket.data_received(early)
