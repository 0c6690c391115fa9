"""What Inkroom's WebSocket connections share: framing, compression, keep-alive.

Server frames are framed here, not by websockets' encoder (:func:`binary_frame`): through
an ``await`` chain and the encoder, every frame to every reader cost 46-97 us against 15-36
us for the Node reference server (bench/RESULTS.md).

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
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, Final

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.extensions.base import Extension
from websockets.extensions.permessage_deflate import (
    PerMessageDeflate,
    ServerPerMessageDeflateFactory,
)
from websockets.frames import Frame, Opcode
from websockets.protocol import Protocol, State
from websockets.server import ServerProtocol
from websockets.typing import ExtensionParameter

# Messages from this size on are compressed (a first-sync slice is 16 KiB); smaller ones
# are not. A live stroke batch or a cursor is 50-400 bytes.
COMPRESS_MIN_BYTES: Final = 4096
# Compressed frames kept for reuse, in bytes: a few large rooms' first syncs.
WIRE_CACHE_BYTES: Final = 32 * 1024 * 1024
# Received bytes a connection may hold before its session reads them; past this its
# socket stops being read (server/ws_direct.py).
INBOX_BYTES: Final = 64 * 1024
PING_HEADER: Final = bytes((0x89, 4))
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
    last_heard: float  # when bytes last arrived, on the loop's clock (time.monotonic)

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
    """``asyncio.Event``'s set, clear, is_set and wait, for a connection's ``writable``:
    an Event is 860 bytes, idle or not (its waiters' deque); this is two slots, and a
    future only while someone waits."""

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


class InkroomWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's WebSocket protocol for the sockets that still go through ASGI (``/sfu/...``,
    a few small signalling messages): large-message-only compression and the loop's shared
    keep-alive timer. The documents' sockets do not come here (server/ws_direct.py)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.keepalive_slot: set[Pinged] | None = None
        self.last_heard = 0.0
        self._keepalive: Keepalive | None = None
        if self.config.ws_per_message_deflate:
            self.conn = ServerProtocol(
                extensions=[LargeMessageDeflateFactory()],
                max_size=self.config.ws_max_size,
                logger=self.conn.logger,
            )

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
        self.transport.write(PING_HEADER + payload)
        return True

    def data_received(self, data: bytes) -> None:
        self.last_heard = self.loop.time()
        super().data_received(data)

    def handle_pong(self, event: Any) -> None:
        if self.pending_ping_payload is None or bytes(event.data) != self.pending_ping_payload:
            return  # unsolicited, or an answer to an older ping
        self.last_ping_rtt = self.loop.time() - self.ping_sent_at
        self.pending_ping_payload = None
        if self._keepalive is not None:
            self._keepalive.answered(self)
