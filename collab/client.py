"""One connected client: a bounded outbox drained by exactly one writer."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from collections.abc import Callable
from typing import Final

from . import metrics
from .errors import CollabError, SlowConsumer
from .ports import Connection, Peer
from .protocol import SyncStep2, decode, encode_update
from .slices import iter_slices

_ids = itertools.count(1)

# A full-state reply larger than this leaves as several updates of about this size, so
# presence, heartbeat echoes and live strokes go between them (about 0.04 s each on
# Fast 3G, 0.16 s on Slow 3G), the client draws the board as it arrives, and each slice
# costs an old phone well under 200 ms to apply (a 16 KiB slice took 100-200 ms at 4x
# CPU). Each slice is deflated on its own: 8 KiB saves 81.4% of a 5,000-stroke board
# against 82.5% for 16 KiB.
SYNC_SLICE_BYTES: Final = 8 * 1024


class Client:
    """A peer in a room. ``send`` never blocks: a client that cannot keep up is failed.

    The room calls :meth:`send` from its broadcast loop; :meth:`pump` (one task per client)
    writes to the transport. A full outbox means the client is too slow for the room: it
    is closed with 1013 and resyncs on reconnect, so it never holds the others back.
    """

    __slots__ = (
        "_direct",
        "_failed",
        "_failure",
        "_finished",
        "_limit",
        "_limit_bytes",
        "_queue",
        "_queued_bytes",
        "_sending",
        "_sync_reply",
        "_wake",
        "bytes_in",
        "bytes_out",
        "connected_at",
        "denied_notified",
        "id",
        "peer",
        "slice_bytes",
    )

    def __init__(self, peer: Peer, *, outbox_limit: int, outbox_bytes: int = 1 << 62) -> None:
        self.id = next(_ids)
        self.peer = peer
        self._queue: deque[bytes] = deque()
        self.slice_bytes = SYNC_SLICE_BYTES
        self._limit = outbox_limit
        self._limit_bytes = outbox_bytes
        self._queued_bytes = 0
        # The queued full-state reply (SyncStep2), if any: at most one per client.
        self._sync_reply: bytes | None = None
        self._wake = asyncio.Event()
        self._failure: CollabError | None = None
        self._failed = asyncio.Event()
        self._finished = False
        self._sending = False
        self._direct: Callable[[bytes], bool] | None = None
        self.denied_notified = False
        # For the admin inspector: wall-clock join time, frames' bytes each way.
        self.connected_at = time.time()
        self.bytes_in = 0
        self.bytes_out = 0

    def __repr__(self) -> str:
        return f"Client(id={self.id}, user={self.peer.user_id!r})"

    @property
    def outbox_depth(self) -> tuple[int, int]:
        """Frames and bytes waiting in the outbox."""
        return len(self._queue), self._queued_bytes

    @property
    def sync_reply_pending(self) -> bool:
        """A full-state reply waits in the outbox."""
        return self._sync_reply is not None

    def send(self, message: bytes, *, sync_reply: bool = False) -> bool:
        """Sends or queues a frame; ``False`` (and the client fails) if the outbox is full.

        When nothing is queued or in flight and the transport can take the frame at once,
        it is written right here: no task wake-up, no await chain. Otherwise it waits in
        the outbox for :meth:`pump`, so frames always leave in order. The outbox is bounded
        in messages and in bytes; one message larger than the byte bound still fits an
        empty outbox (a large board's first sync must get through).

        A large ``sync_reply`` (a SyncStep2 frame) always waits for :meth:`pump`, which
        sends it as slices: SyncUpdate frames of about :attr:`slice_bytes`, then a last
        SyncStep2, so a stock client counts itself synced once it holds the whole state.
        Frames queued meanwhile go between slices. It stays pending until its last slice
        has left (see :attr:`sync_reply_pending`).
        """
        if self._failure is not None or self._finished:
            return False
        direct = self._direct
        if (
            direct is not None
            and not (sync_reply and len(message) > self.slice_bytes)
            and not self._queue
            and not self._sending
            and direct(message)
        ):
            self.bytes_out += len(message)
            return True
        if len(self._queue) >= self._limit or (
            self._queue and self._queued_bytes + len(message) > self._limit_bytes
        ):
            metrics.OUTBOX_DROPS.inc()
            self.fail(
                SlowConsumer(
                    f"outbox full ({len(self._queue)} messages, {self._queued_bytes} bytes)"
                )
            )
            return False
        self._queue.append(message)
        self._queued_bytes += len(message)
        self.bytes_out += len(message)
        if sync_reply:
            self._sync_reply = message
        self._wake.set()
        return True

    def fail(self, error: CollabError) -> None:
        """Makes :meth:`pump` raise ``error`` at its next step; queued frames are dropped."""
        if self._failure is None:
            self._failure = error
            self._queue.clear()
            self._queued_bytes = 0
            self._sync_reply = None
            self._wake.set()
            self._failed.set()

    async def watch(self) -> None:
        """Raises the failure as soon as there is one.

        Run beside :meth:`pump`: a writer stuck in a send to a dead peer never reaches its
        next check, so this is what tears the connection down.
        """
        await self._failed.wait()
        assert self._failure is not None
        raise self._failure

    def finish(self) -> None:
        """Lets :meth:`pump` return once the outbox is drained."""
        self._finished = True
        self._wake.set()

    async def pump(self, connection: Connection) -> None:
        """Writes queued frames in order until finished; raises the failure, if any.

        From its start, :meth:`send` may also write directly through
        ``connection.send_nowait`` whenever this pump has nothing queued or in flight.
        """
        queue = self._queue
        self._direct = connection.send_nowait
        while True:
            while queue:
                if self._failure is not None:
                    raise self._failure
                self._sending = True
                message = queue.popleft()
                self._queued_bytes -= len(message)
                try:
                    if message is self._sync_reply:
                        await self._send_reply(connection, message)
                        self._sync_reply = None
                    else:
                        await connection.send(message)
                finally:
                    self._sending = False
            if self._failure is not None:
                raise self._failure
            if self._finished:
                return
            self._wake.clear()
            await self._wake.wait()

    async def _send_reply(self, connection: Connection, frame: bytes) -> None:
        """Sends a SyncStep2 frame, in slices when large, with queued frames between them.

        Once started, the reply is in flight: its bytes no longer count against the
        outbox bound (as a single large frame being written never did), so frames queued
        behind it are bounded as usual. Slices are cut as they go: the first leaves after
        reading about :attr:`slice_bytes` of the update (milliseconds), not all of it.
        """
        if len(frame) <= self.slice_bytes:
            await connection.send(frame)
            return
        message = decode(frame)
        assert isinstance(message, SyncStep2)
        pieces = iter_slices(message.update, self.slice_bytes)
        queue = self._queue
        piece = next(pieces)
        sent = 1
        for following in pieces:
            if self._failure is not None:
                raise self._failure
            await connection.send(encode_update(piece))
            piece = following
            sent += 1
            # A turn of the loop between slices: what the room queues meanwhile (echoes,
            # presence, live strokes) leaves before the next slice.
            await asyncio.sleep(0)
            while queue:
                if self._failure is not None:
                    raise self._failure
                between = queue.popleft()
                self._queued_bytes -= len(between)
                await connection.send(between)
        await connection.send(bytes(SyncStep2(piece)))
        metrics.SYNC_SLICES.inc(sent)
