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
from .fullstate import FullState, SyncReply
from .ports import Connection, Peer
from .protocol import EMPTY_UPDATE, SyncStep2, decode, encode_update
from .slices import iter_slices

_ids = itertools.count(1)

# A full-state reply larger than this leaves as several updates of about this size, so
# presence, heartbeat echoes and live strokes go between them (about 0.04 s each on
# Fast 3G, 0.16 s on Slow 3G), the client draws the board as it arrives, and each slice
# costs an old phone well under 200 ms to apply (a 16 KiB slice took 100-200 ms at 4x
# CPU). Each slice is deflated on its own: 8 KiB saves 81.4% of a 5,000-stroke board
# against 82.5% for 16 KiB.
SYNC_SLICE_BYTES: Final = 8 * 1024

# Shared slices written in one transport write, before the pump yields a turn: a write
# and a turn per slice were most of a join storm's CPU. Small beside the transport's
# high-water mark (64 KiB), so a joiner on a slow link still gets frames queued
# meanwhile (presence, echoes) between every few slices: 48 KiB is 0.25 s on Fast 3G.
SLICES_PER_TURN_BYTES: Final = 48 * 1024


class Client:
    """A peer in a room. ``send`` never blocks: a client that cannot keep up is failed.

    The room calls :meth:`send` from its broadcast loop; :meth:`pump` (one task per client)
    writes to the transport. A full outbox means the client is too slow for the room: it
    is closed with 1013 and resyncs on reconnect, so it never holds the others back.
    """

    __slots__ = (
        "_cancelled_by_fail",
        "_connection",
        "_direct",
        "_ended",
        "_failure",
        "_finished",
        "_limit",
        "_limit_bytes",
        "_on_done",
        "_pump",
        "_queue",
        "_queued_bytes",
        "_sending",
        "_sync_reply",
        "answered",
        "bytes_in",
        "bytes_out",
        "connected_at",
        "denied_notified",
        "held_sync",
        "id",
        "peer",
        "saved_waits",
        "slice_bytes",
        "synced_in",
    )

    def __init__(self, peer: Peer, *, outbox_limit: int, outbox_bytes: int = 1 << 62) -> None:
        self.id = next(_ids)
        self.peer = peer
        self._queue: deque[bytes | SyncReply] = deque()
        self.slice_bytes = SYNC_SLICE_BYTES
        self._limit = outbox_limit
        self._limit_bytes = outbox_bytes
        self._queued_bytes = 0
        # The queued full-state reply (SyncStep2), if any: at most one per client.
        self._sync_reply: bytes | SyncReply | None = None
        self._failure: CollabError | None = None
        # The pump's task, which a failure cancels when it is stuck in a send to a peer
        # that does not read (no separate watcher task per connection).
        self._pump: asyncio.Task[None] | None = None
        self._cancelled_by_fail = False
        self._finished = False
        self._sending = False
        self._direct: Callable[[bytes], bool] | None = None
        # Started with :meth:`start`: no task while nothing is queued (a writer task
        # exists only while frames wait), and how the client ended goes to ``_on_done``.
        self._connection: Connection | None = None
        self._on_done: Callable[[BaseException | None], None] | None = None
        self._ended = False
        self.denied_notified = False
        # Saved acknowledgements (collab/room.py), only for clients that ask: what this
        # connection waits for, as (journal count to reach, marker to acknowledge).
        self.saved_waits: deque[tuple[int, int]] | None = None
        # A SyncStep1 whose answer waits for this client's own SyncStep2 to be stored,
        # and the timer that sends it anyway.
        self.held_sync: tuple[bytes, asyncio.TimerHandle] | None = None
        self.synced_in = False  # its SyncStep2 has arrived
        self.answered = False  # it has been sent a SyncStep2
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
        if sync_reply and len(message) > self.slice_bytes:
            sliced = decode(message)
            assert isinstance(sliced, SyncStep2)
            return self.send_sync(sliced.update)
        self._queue.append(message)
        self._queued_bytes += len(message)
        self.bytes_out += len(message)
        if sync_reply:
            self._sync_reply = message
        self._wake()
        return True

    def send_sync(self, update: bytes) -> bool:
        """Sends SyncStep2 with ``update``: as one frame when small, else in slices (the
        room's answer to a SyncStep1, encoded once, never framed whole to be cut again)."""
        if len(update) <= self.slice_bytes:
            return self.send(bytes(SyncStep2(update)), sync_reply=True)
        return self.send_reply(SyncReply(None, lambda: update))

    def send_reply(self, reply: SyncReply) -> bool:
        """Queues a large SyncStep2 answer, which :meth:`pump` sends in slices.

        Its shared frames belong to the room, not to this client: they do not count
        against the outbox's byte bound. It stays pending until its last slice has left
        (see :attr:`sync_reply_pending`).
        """
        if self._failure is not None or self._finished:
            return False
        if len(self._queue) >= self._limit:
            metrics.OUTBOX_DROPS.inc()
            self.fail(SlowConsumer(f"outbox full ({len(self._queue)} messages)"))
            return False
        self._queue.append(reply)
        self._sync_reply = reply
        self._wake()
        return True

    def _wake(self) -> None:
        if self._connection is None or self._ended:
            return
        writer = self._pump
        if writer is not None and not writer.done():
            return  # the writer sees the queue, the failure or the finish at its next step
        if self._failure is not None:
            self._end(self._failure)
        elif self._queue and not self._write_now(self._connection):
            self._pump = asyncio.get_running_loop().create_task(self._write_queued())
        elif self._finished and not self._queue:
            self._end(None)

    def _write_now(self, connection: Connection) -> bool:
        """Writes the queued frames in one transport write if they are all plain frames
        and the transport takes them at once (what a join queues before :meth:`start`:
        the room's SyncStep1 and presence); ``False`` leaves them for a writer task."""
        queue = self._queue
        if not all(type(message) is bytes for message in queue):
            return False
        frames: list[bytes] = list(queue)  # type: ignore[arg-type]  # checked just above
        if not connection.send_many_nowait(frames):
            return False
        queue.clear()
        self._queued_bytes = 0
        self._sync_reply = None  # if it was queued, it was one of these plain frames
        return True

    def start(
        self, connection: Connection, on_done: Callable[[BaseException | None], None]
    ) -> None:
        """Sends through ``connection`` from now on, without a task of its own while
        nothing is queued: frames the transport takes at once are written by
        :meth:`send` itself, and a writer task runs only while frames wait (a slow reader,
        a large first sync). ``on_done`` is called once: with the failure, or with
        ``None`` once finished with the outbox drained. :meth:`stop` ends it."""
        self._connection = connection
        self._on_done = on_done
        self._direct = connection.send_nowait
        self._wake()

    def stop(self) -> asyncio.Task[None] | None:
        """No more writing; the writer task, cancelled, if one runs (await it)."""
        self._connection = None
        self._ended = True
        self._on_done = None
        writer = self._pump
        if writer is not None and not writer.done():
            writer.cancel()
            return writer
        return None

    def _end(self, outcome: BaseException | None) -> None:
        if self._ended:
            return
        self._ended = True
        on_done, self._on_done = self._on_done, None
        if on_done is not None:
            on_done(outcome)

    async def _write_queued(self) -> None:
        """The writer task of a started client: writes what is queued, then ends."""
        connection = self._connection
        if connection is None:
            return
        try:
            finished = await self._drain(connection)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if self._cancelled_by_fail and task is not None:
                self._cancelled_by_fail = False
                if task.uncancel() == 0:  # only ours: end as the failure
                    self._end(self._failure)
                    return
            raise
        except Exception as exc:  # a failure, or the peer gone: ends this client
            self._end(exc)
            return
        if finished:
            self._end(None)

    def fail(self, error: CollabError) -> None:
        """Makes :meth:`pump` raise ``error``: at its next step, or at once when it is
        stuck in a send (its task is cancelled); queued frames are dropped."""
        if self._failure is None:
            self._failure = error
            self._queue.clear()
            self._queued_bytes = 0
            self._sync_reply = None
            self._wake()
            if self._sending and self._pump is not None and not self._pump.done():
                self._cancelled_by_fail = True
                self._pump.cancel()

    def finish(self) -> None:
        """Lets :meth:`pump` return once the outbox is drained."""
        self._finished = True
        self._wake()

    async def pump(self, connection: Connection) -> None:
        """:meth:`start`, then waits until the client ends: returns once finished with the
        outbox drained, raises the failure, if any (for a caller that owns a task)."""
        done: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()

        def on_done(outcome: BaseException | None) -> None:
            if not done.done():
                done.set_result(outcome)

        self.start(connection, on_done)
        try:
            outcome = await done
        finally:
            writer = self.stop()
            if writer is not None:
                await asyncio.wait([writer])
        if outcome is not None:
            raise outcome

    async def _drain(self, connection: Connection) -> bool:
        """Writes the queued frames in order; raises the failure; ``True`` once finished
        with nothing left to write."""
        queue = self._queue
        while queue:
            if self._failure is not None:
                raise self._failure
            self._sending = True
            message = queue.popleft()
            try:
                if isinstance(message, SyncReply):
                    await self._send_reply(connection, message)
                    self._sync_reply = None
                else:
                    self._queued_bytes -= len(message)
                    await connection.send(message)
                    if message is self._sync_reply:
                        self._sync_reply = None
            finally:
                self._sending = False
        if self._failure is not None:
            raise self._failure
        return self._finished

    async def _send_reply(self, connection: Connection, reply: SyncReply) -> None:
        """Sends a large SyncStep2 answer as slices, with queued frames between them.

        First the shared frames of the reply's base (cut once for every joiner), then the
        rest: what changed since, computed only now, sliced like the rest if large, its
        last slice as SyncStep2 so a stock client counts itself synced once it holds the
        whole state. Once started, the reply is in flight: frames queued behind it are
        bounded as usual.
        """
        sent = 0
        if reply.base is not None:
            sent += await self._send_shared(connection, reply.base)
        rest = reply.rest()
        if isinstance(rest, FullState):
            # A large "since": shared and cut once too (every joiner of a storm asks for
            # the same), then an empty SyncStep2 that marks the client synced.
            sent += await self._send_shared(connection, rest)
            rest = EMPTY_UPDATE
        pieces = iter_slices(rest, self.slice_bytes)
        piece = next(pieces)
        for following in pieces:
            frame = encode_update(piece)
            await self._send_between(connection, [frame])
            self.bytes_out += len(frame)
            piece = following
            sent += 1
        last = bytes(SyncStep2(piece))
        if self._failure is not None:
            raise self._failure
        await connection.send(last)
        self.bytes_out += len(last)
        metrics.SYNC_SLICES.inc(sent + 1)

    async def _send_shared(self, connection: Connection, state: FullState) -> int:
        """Sends the frames of a shared state in batches; returns how many."""
        index = 0
        while True:
            batch: list[bytes] = []
            size = 0
            while size < SLICES_PER_TURN_BYTES and (frame := state.frame(index)) is not None:
                batch.append(frame)
                size += len(frame)
                index += 1
            if not batch:
                return index
            await self._send_between(connection, batch)
            self.bytes_out += size

    async def _send_between(self, connection: Connection, frames: list[bytes]) -> None:
        """Sends a few slices, then what the room queued meanwhile (echoes, presence, live
        strokes), after a turn of the loop so that it can queue.

        The slices go straight to the transport in one write when it can take them
        (shared slices are framed once for every joiner, server/ws_protocol.py);
        otherwise they wait. A write and a turn of the loop per slice were most of a join
        storm's cost."""
        if self._failure is not None:
            raise self._failure
        if not connection.send_many_nowait(frames):
            # Back-pressure (the usual case for a phone or a slow link): wait for room,
            # then write them in one go, not one awaited send each.
            await connection.drained()
            if not connection.send_many_nowait(frames):
                for frame in frames:
                    await connection.send(frame)
        await asyncio.sleep(0)
        queue = self._queue
        while queue and isinstance(queue[0], bytes):
            if self._failure is not None:
                raise self._failure
            between = queue.popleft()
            assert isinstance(between, bytes)
            self._queued_bytes -= len(between)
            await connection.send(between)
