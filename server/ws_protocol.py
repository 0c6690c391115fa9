"""uvicorn's sans-IO WebSocket protocol plus a synchronous send for the broadcast hot path.

Through ASGI, every frame to every reader costs a task wake-up, an ``await`` chain through
the server's ``send`` and a frame serialisation: measured at 46-97 us per frame against
15-36 us for the Node reference server (bench/RESULTS.md). ``send_nowait`` writes a
binary message to the transport at once when the connection can take it without
waiting, and reports ``False`` otherwise so the caller queues it for the ordinary path.
It is offered to the application as the ASGI scope extension ``inkroom.send_nowait``.

Compression (``ws_compression``, on by default) is permessage-deflate for large messages
only: a board's first sync and catch-ups shrink by about three quarters, while live
strokes, presence and heartbeats (a few hundred bytes, where deflate saves little and
costs the relay a compressor run per reader) leave uncompressed through the same fast
path as without the extension. RFC 7692 lets a sender choose per message: a message
without the RSV1 bit is plain.

Keep-alive pings go out from one timer for every connection of the loop
(:class:`Keepalive`), spread over the interval, instead of two timers per connection
(uvicorn's ping timer and pong deadline, each a heap entry made and cancelled every
interval): an idle node's cost is its pings, not its timers.

A compressed message is compressed once, whoever it goes to: the server compresses each
message on its own (no context takeover), so its frame is the same bytes for every
connection that negotiated the same window. A join storm sends every newcomer the same
first-sync slices, and a large catch-up goes to every reader of a room; both are deflated
once and then written as they are (:class:`WireCache`).
"""

from __future__ import annotations

import asyncio
import itertools
import struct
import typing
import weakref
import zlib
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from typing import Any, Final

from uvicorn.protocols.utils import ClientDisconnected
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.exceptions import InvalidState
from websockets.extensions.base import Extension
from websockets.extensions.permessage_deflate import (
    PerMessageDeflate,
    ServerPerMessageDeflateFactory,
)
from websockets.frames import Frame, Opcode
from websockets.protocol import Protocol, State
from websockets.server import ServerProtocol
from websockets.typing import ExtensionParameter

EXTENSION = "inkroom.send_nowait"
EXTENSION_MANY = "inkroom.send_many_nowait"
EXTENSION_DRAINED = "inkroom.drained"
EXTENSION_LISTEN = "inkroom.listen"
# Messages from this size on are compressed (a first-sync slice is 16 KiB); smaller ones
# are not. A live stroke batch or a cursor is 50-400 bytes.
COMPRESS_MIN_BYTES: Final = 4096
# Compressed frames kept for reuse, in bytes: a few large rooms' first syncs.
WIRE_CACHE_BYTES: Final = 32 * 1024 * 1024
# Received bytes a connection may hold unread before its socket stops being read.
INBOX_BYTES: Final = 64 * 1024
_PING_HEADER: Final = bytes((0x89, 4))
# Server-to-client frames are never masked (RFC 6455 5.1): FIN + binary opcode, then length.
_FIN_BINARY = 0x82


def binary_frame(data: bytes) -> bytes:
    """One unmasked, unfragmented binary frame (RFC 6455 5.2)."""
    n = len(data)
    if n < 126:
        return bytes((_FIN_BINARY, n)) + data
    if n < 1 << 16:
        return struct.pack("!BBH", _FIN_BINARY, 126, n) + data
    return struct.pack("!BBQ", _FIN_BINARY, 127, n) + data


class WireCache:
    """Compressed frames by (window bits, message), least recently used first out.

    Keys are the message bytes themselves: a message sent to many connections is one
    object, whose hash Python computes once and whose equality is identity, so a hit
    costs a dictionary lookup. Bounded by the bytes of its frames.
    """

    def __init__(self, max_bytes: int = WIRE_CACHE_BYTES) -> None:
        self._frames: OrderedDict[tuple[int, bytes], bytes] = OrderedDict()
        self._bytes = 0
        self._max_bytes = max_bytes
        self.hits = 0
        self.misses = 0

    def plain(self, data: bytes) -> bytes:
        """``data`` framed without compression, framed once for every connection."""
        key = (0, data)
        wire = self._frames.get(key)
        if wire is not None:
            self._frames.move_to_end(key)
            self.hits += 1
            return wire
        wire = binary_frame(data)
        self.misses += 1
        self._keep(key, wire)
        return wire

    def _keep(self, key: tuple[int, bytes], wire: bytes) -> None:
        if len(wire) <= self._max_bytes // 4:
            self._frames[key] = wire
            self._bytes += len(wire)
            while self._bytes > self._max_bytes:
                _, dropped = self._frames.popitem(last=False)
                self._bytes -= len(dropped)

    def frame(self, conn: Protocol, data: bytes) -> bytes:
        """``data`` as this connection's compressed frame; compressed only on a miss."""
        extension = conn.extensions[0]
        assert isinstance(extension, PerMessageDeflate)
        key = (extension.local_max_window_bits, data)
        wire = self._frames.get(key)
        if wire is not None and conn.state is State.OPEN:
            self._frames.move_to_end(key)
            self.hits += 1
            return wire
        # A miss, or a connection that is closing: websockets frames it (and raises
        # InvalidState if it may no longer send).
        conn.send_binary(data)
        wire = b"".join(conn.data_to_send())
        self.misses += 1
        self._keep(key, wire)
        return wire


WIRE_CACHE: Final = WireCache()


class Pinged(typing.Protocol):
    """What :class:`Keepalive` needs of a connection."""

    keepalive_slot: set[Pinged] | None
    last_heard: float  # ``loop.time()`` of the last bytes received

    def ping(self, payload: bytes, now: float) -> bool:
        """Sends a ping; ``False`` if the connection is closing."""
        ...

    def keepalive_timeout(self) -> None:
        """The last ping went unanswered: close the connection."""
        ...


class Keepalive:
    """Pings every connection of one event loop from a single timer.

    Connections are dealt into :data:`SLOTS` slots; each tick (every interval / SLOTS)
    pings one slot's connections, so each is pinged once per interval and the pings of
    10,000 connections are spread evenly, not bunched. A ping unanswered after the
    timeout closes its connection with 1011, checked every tick: a dead link is found
    within interval + timeout (+ one tick), as with uvicorn's own timers.
    """

    SLOTS: Final = 16

    def __init__(self, loop: asyncio.AbstractEventLoop, interval: float, timeout: float) -> None:
        self._loop = loop
        self._interval = interval
        self._tick_every = interval / self.SLOTS
        self._timeout = timeout
        self._slots: list[set[Pinged]] = [set() for _ in range(self.SLOTS)]
        self._deal = itertools.cycle(self._slots)
        self._cursor = 0
        self._waiting: dict[Pinged, float] = {}  # ping sent, no pong yet
        self._count = 0
        self._timer: asyncio.TimerHandle | None = None
        self._payloads = itertools.count()

    def __len__(self) -> int:
        return self._count

    def add(self, connection: Pinged) -> None:
        slot = next(self._deal)
        slot.add(connection)
        connection.keepalive_slot = slot
        self._count += 1
        if self._timer is None:
            self._timer = self._loop.call_later(self._tick_every, self._tick)

    def remove(self, connection: Pinged) -> None:
        slot = connection.keepalive_slot
        if slot is None:
            return
        connection.keepalive_slot = None
        slot.discard(connection)
        self._waiting.pop(connection, None)
        self._count -= 1

    def answered(self, connection: Pinged) -> None:
        self._waiting.pop(connection, None)

    def _tick(self) -> None:
        now = self._loop.time()
        if self._waiting:
            late = [c for c, sent in self._waiting.items() if now - sent >= self._timeout]
            for connection in late:
                self.remove(connection)
                connection.keepalive_timeout()
        slot = self._slots[self._cursor]
        self._cursor = (self._cursor + 1) % self.SLOTS
        for connection in slot:
            # A connection heard from within the interval is alive: no ping needed.
            if connection not in self._waiting and now - connection.last_heard >= self._interval:
                payload = struct.pack("!I", next(self._payloads) & 0xFFFFFFFF)
                if connection.ping(payload, now):
                    self._waiting[connection] = now
        self._timer = self._loop.call_later(self._tick_every, self._tick) if self._count else None


_keepalives: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[tuple[float, float], Keepalive]
] = weakref.WeakKeyDictionary()


def keepalive_for(interval: float, timeout: float) -> Keepalive:
    """The loop's shared :class:`Keepalive` for these timings."""
    loop = asyncio.get_running_loop()
    by_timing = _keepalives.setdefault(loop, {})
    keepalive = by_timing.get((interval, timeout))
    if keepalive is None:
        keepalive = by_timing[(interval, timeout)] = Keepalive(loop, interval, timeout)
    return keepalive


class Flag:
    """``asyncio.Event``'s set, clear, is_set and wait, for uvicorn's per-connection
    ``writable``: an Event is 860 bytes, idle or not (its waiters' deque); this is two
    slots, and a future only while someone waits."""

    __slots__ = ("_set", "_waiters")

    def __init__(self) -> None:
        self._set = True
        self._waiters: list[asyncio.Future[None]] | None = None

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        if self._set:
            return
        self._set = True
        waiters, self._waiters = self._waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(None)

    def clear(self) -> None:
        self._set = False

    async def wait(self) -> bool:
        if self._set:
            return True
        waiter = asyncio.get_running_loop().create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(waiter)
        try:
            await waiter
        finally:
            if self._waiters is not None and waiter in self._waiters:
                self._waiters.remove(waiter)
        return True


class Inbox:
    """A connection's received messages, waiting for the application's ``receive``.

    uvicorn keeps them in an ``asyncio.Queue``: 3.3 KB per connection, idle or not (its
    getter and putter deques and a condition's worth of state), a tenth of an idle
    connection's memory. Here an idle connection holds two empty slots; the deque exists
    only while messages wait. ``bytes`` is what they hold, for the read pause.
    """

    __slots__ = ("_items", "_listener", "_waiter", "bytes")

    def __init__(self) -> None:
        self._items: deque[Any] | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._listener: Callable[[Any], None] | None = None
        self.bytes = 0

    def listen(self, listener: Callable[[Any], None]) -> None:
        """From now on every message goes to ``listener`` as it is put, not to ``get``;
        those already waiting go first, in order."""
        while self._items:
            message = self._items.popleft()
            self.bytes -= _size(message)
            listener(message)
        self._items = None
        self._listener = listener

    def put_nowait(self, message: Any) -> None:
        listener = self._listener
        if listener is not None:
            listener(message)
            return
        if self._items is None:
            self._items = deque()
        self._items.append(message)
        self.bytes += _size(message)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def empty(self) -> bool:
        return not self._items

    async def get(self) -> Any:
        while not self._items:
            waiter = self._waiter = asyncio.get_running_loop().create_future()
            try:
                await waiter
            finally:
                self._waiter = None
        items = self._items
        message = items.popleft()
        if not items:
            self._items = None
        self.bytes -= _size(message)
        return message


def _size(message: Any) -> int:
    return len(message.get("bytes") or message.get("text") or b"")


class LargeMessageDeflate(PerMessageDeflate):
    """permessage-deflate that leaves messages under ``min_bytes`` uncompressed."""

    def __init__(
        self,
        remote_no_context_takeover: bool,
        local_no_context_takeover: bool,
        remote_max_window_bits: int,
        local_max_window_bits: int,
        compress_settings: dict[Any, Any] | None = None,
        *,
        min_bytes: int = COMPRESS_MIN_BYTES,
    ) -> None:
        # Told "no context takeover" so that it makes no decompressor now; the real
        # setting is restored at once and the decompressor made on first use (below).
        super().__init__(
            True,
            local_no_context_takeover,
            remote_max_window_bits,
            local_max_window_bits,
            compress_settings,
        )
        self.remote_no_context_takeover = remote_no_context_takeover
        self._decoder: Any = None
        self.min_bytes = min_bytes

    # The client's compressed messages are inflated by a zlib stream kept for the
    # connection (the client keeps its context: live strokes and presence compress to a
    # third with it, to nine tenths without). Its state is 7 KB, made here only when the
    # first compressed message arrives: a client that compresses only large messages, or
    # none, never pays it. A browser compresses every message, so for a browser it is
    # made at its first.
    @property
    def decoder(self) -> Any:
        if self._decoder is None:
            self._decoder = zlib.decompressobj(wbits=-self.remote_max_window_bits)
        return self._decoder

    @decoder.setter
    def decoder(self, value: Any) -> None:
        self._decoder = value

    @decoder.deleter
    def decoder(self) -> None:
        self._decoder = None

    def encode(self, frame: Frame) -> Frame:
        plain = frame.opcode in (Opcode.TEXT, Opcode.BINARY) and frame.fin
        if plain and len(frame.data) < self.min_bytes:
            return frame
        return super().encode(frame)


class LargeMessageDeflateFactory(ServerPerMessageDeflateFactory):
    """Negotiates permessage-deflate like websockets does, with :class:`LargeMessageDeflate`.

    The server compresses each large message on its own (no context takeover): no
    compressor is kept per idle connection, and a 32 KiB slice has enough repetition
    within itself. What a client sends is decompressed with a 4 KiB window.
    """

    def __init__(self, min_bytes: int = COMPRESS_MIN_BYTES) -> None:
        super().__init__(
            server_no_context_takeover=True,
            client_max_window_bits=12,
            compress_settings={"memLevel": 8},
        )
        self.min_bytes = min_bytes

    def process_request_params(
        self, params: Sequence[ExtensionParameter], accepted_extensions: Sequence[Extension]
    ) -> tuple[list[ExtensionParameter], PerMessageDeflate]:
        response, ext = super().process_request_params(params, accepted_extensions)
        large = LargeMessageDeflate(
            ext.remote_no_context_takeover,
            ext.local_no_context_takeover,
            ext.remote_max_window_bits,
            ext.local_max_window_bits,
            ext.compress_settings,
            min_bytes=self.min_bytes,
        )
        return response, large


class FastWrites:
    """The direct send path of a WebSocket connection: :meth:`send_nowait`,
    :meth:`send_many_nowait`, framed through :data:`WIRE_CACHE`.

    For a connection with ``transport``, ``conn`` (websockets' sans-IO protocol, which
    holds the negotiated compression) and ``writable`` (set while the transport takes
    more); :meth:`_can_write` and :meth:`_closing` say when it may write.
    """

    __slots__ = ()

    transport: asyncio.Transport
    conn: Any  # websockets' Protocol (uvicorn's attribute says ServerProtocol)
    writable: Any  # a Flag (uvicorn's attribute says asyncio.Event)

    def _closing(self) -> bool:
        raise NotImplementedError

    def _can_write(self) -> bool:
        raise NotImplementedError

    def send_nowait(self, data: bytes) -> bool:
        """Writes ``data`` as one binary message now; ``False`` if it would have to wait.

        It waits when the transport is paused (the peer reads slowly), before the
        handshake completes and after a close. With compression negotiated, a large
        message goes through websockets' own encoder, which compresses it; a small one is
        framed here, plain, as without the extension.
        """
        if not self._can_write():
            return False
        self.transport.write(self._wire(data))
        return True

    def send_many_nowait(self, messages: Sequence[bytes]) -> bool:
        """Writes ``messages`` as binary messages, in order, in one transport write;
        ``False`` (nothing written) if it would have to wait."""
        if not self._can_write():
            return False
        self.transport.write(b"".join([self._wire(data) for data in messages]))
        return True

    def _wire(self, data: bytes) -> bytes:
        if len(data) < COMPRESS_MIN_BYTES:
            return binary_frame(data)
        if self.conn.extensions:
            return WIRE_CACHE.frame(self.conn, data)
        return WIRE_CACHE.plain(data)


class InkroomWebSocketProtocol(FastWrites, WebSocketsSansIOProtocol):
    """Adds :meth:`send_nowait` and large-message-only compression; the rest is uvicorn's."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue = Inbox()  # type: ignore[assignment]  # the same three methods, lighter
        self.writable = Flag()  # likewise
        self.keepalive_slot: set[Pinged] | None = None
        self.last_heard = 0.0
        self._keepalive: Keepalive | None = None
        if self.config.ws_per_message_deflate:
            self.conn = ServerProtocol(
                extensions=[LargeMessageDeflateFactory()],
                max_size=self.config.ws_max_size,
                logger=self.conn.logger,
            )

    # -- keep-alive through the loop's shared Keepalive --------------------------------

    def start_keepalive(self) -> None:
        if self.ping_interval is not None and self.ping_interval > 0:
            self._keepalive = keepalive_for(
                self.ping_interval, self.ping_timeout or self.ping_interval
            )
            self._keepalive.add(self)

    def stop_keepalive(self) -> None:
        if self._keepalive is not None:
            self._keepalive.remove(self)
        self.pending_ping_payload = None

    def ping(self, payload: bytes, now: float) -> bool:
        """Sends a keep-alive ping; ``False`` if the connection is closing."""
        if self.close_sent or self.transport.is_closing():
            return False
        self.pending_ping_payload = payload
        self.ping_sent_at = now
        # Framed here (FIN + ping opcode, 4 bytes, unmasked): websockets' encoder adds
        # nothing a control frame needs and costs more than the send itself.
        self.transport.write(_PING_HEADER + payload)
        return True

    def data_received(self, data: bytes) -> None:
        self.last_heard = self.loop.time()
        super().data_received(data)

    # -- reading: paused past INBOX_BYTES unread, not after every message -------------

    def send_receive_event_to_app(self) -> None:
        """uvicorn's, except that the socket keeps being read until ``INBOX_BYTES`` wait
        unread: uvicorn stops reading after every message and starts again when the app
        takes it, two ``epoll_ctl`` calls per message received. The session reads as
        messages come, so the pause is for a stalled application, not for every stroke."""
        data = self.frames[0] if len(self.frames) == 1 else b"".join(self.frames)
        self.frames = []
        if self.close_sent:
            return  # past ``websocket.close``: reads stay on until the peer's close reply
        if self.curr_msg_data_type == "text":
            try:
                self.queue.put_nowait({"type": "websocket.receive", "text": data.decode()})
            except UnicodeDecodeError:
                self.conn.send_close(1007)
                self.handle_parser_exception()
                return
        else:
            self.queue.put_nowait({"type": "websocket.receive", "bytes": data})
        inbox: Inbox = self.queue  # type: ignore[assignment]
        if not self.read_paused and inbox.bytes > INBOX_BYTES:
            self.read_paused = True
            self.transport.pause_reading()

    async def receive(self) -> Any:
        message = await self.queue.get()
        inbox: Inbox = self.queue  # type: ignore[assignment]
        if self.read_paused and inbox.bytes <= INBOX_BYTES // 2:
            self.read_paused = False
            self.transport.resume_reading()
        return message

    def handle_pong(self, event: Any) -> None:
        if self.pending_ping_payload is None or bytes(event.data) != self.pending_ping_payload:
            return  # unsolicited, or an answer to an older ping
        self.last_ping_rtt = self.loop.time() - self.ping_sent_at
        self.pending_ping_payload = None
        if self._keepalive is not None:
            self._keepalive.answered(self)

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        self._forget_request()
        scope = getattr(self, "scope", None)
        if scope is not None:
            scope["extensions"][EXTENSION] = self.send_nowait
            scope["extensions"][EXTENSION_MANY] = self.send_many_nowait
            scope["extensions"][EXTENSION_DRAINED] = self.drained
            scope["extensions"][EXTENSION_LISTEN] = self.listen

    def listen(self, listener: Callable[[Any], None]) -> None:
        """Hands every received ASGI message to ``listener`` from ``data_received``, in
        order, instead of queueing it for ``receive`` (see ``Connection.listen``)."""
        inbox: Inbox = self.queue  # type: ignore[assignment]
        inbox.listen(listener)
        if self.read_paused:
            self.read_paused = False
            self.transport.resume_reading()

    async def drained(self) -> bool:
        """Waits until the transport takes more (uvicorn's flow control); ``False`` if the
        connection is closing instead. Large sends then resume with :meth:`send_many_nowait`,
        not one ASGI send per frame: under back-pressure that path cost 8x the CPU."""
        await self.writable.wait()  # set again on resume, and on connection loss
        return not self._closing()

    def _closing(self) -> bool:
        return self.close_sent or self.disconnected or self.transport.is_closing()

    def _can_write(self) -> bool:
        return self.handshake_complete and self.writable.is_set() and not self._closing()

    def _forget_request(self) -> None:
        """Swaps websockets' parser for a frame parser that never saw the request.

        The server's parser reads the HTTP request into a local variable and then parses
        frames in the same generator for the connection's whole life, so the request and
        its headers (2-3 KB) stay alive with it. The swap happens only where the old
        parser holds no partial frame: waiting at a frame boundary for the next byte.
        """
        parser = self.conn.parser
        frames = getattr(parser, "gi_yieldfrom", None)  # websockets' Protocol.parse
        waiting = getattr(frames, "gi_yieldfrom", None)
        if getattr(getattr(waiting, "gi_code", None), "co_name", "") != "at_eof":
            return
        fresh = Protocol.parse(self.conn)
        next(fresh)  # runs to the same wait: no data is buffered
        self.conn.parser = fresh
        parser.close()

    async def send(self, message: Any) -> None:
        """uvicorn's ASGI send, with large binary messages framed through :data:`WIRE_CACHE`."""
        data = message.get("bytes") if message["type"] == "websocket.send" else None
        if message["type"] == "websocket.accept":
            await super().send(message)
            if self.handshake_complete:
                # The handshake's request and response (their header objects, ~4 KB)
                # are never read again; the ASGI scope keeps what the app needs.
                del self.request, self.response
            return
        if (
            data is None
            or len(data) < COMPRESS_MIN_BYTES
            or not self.conn.extensions
            or not self.handshake_complete
            or self.close_sent
            or self.initial_response is not None
        ):
            await super().send(message)
            return
        await self.writable.wait()
        if self.disconnected:
            raise ClientDisconnected()
        try:
            wire = WIRE_CACHE.frame(self.conn, bytes(data))
        except InvalidState as exc:
            raise ClientDisconnected() from exc
        self.transport.write(wire)
