"""Serving one connection: acquire the room, pump both directions, clean up on any exit."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from . import metrics
from .budgets import TokenBucket
from .client import Client
from .errors import CloseCode, CollabError, MessageTooBig, RateLimited
from .limits import Limits
from .ports import Connection, Disconnected, DocumentName, Peer
from .registry import Registry
from .room import Room

log = logging.getLogger("inkroom.collab.session")


async def serve(registry: Registry, connection: Connection, name: DocumentName, peer: Peer) -> None:
    """Runs one client until it leaves or misbehaves; never raises for a client's fault.

    A bad frame, a slow reader or a flood closes this connection with the error's close
    code. The room and its other clients carry on.
    """
    fields = {"document": name, "user": peer.user_id}
    try:
        room = await registry.acquire(name)
    except CollabError as exc:
        log.warning("join refused: %s", exc, extra=fields)
        await connection.close(exc.close_code, str(exc))
        return
    try:
        client = room.join(peer)
    except CollabError as exc:
        registry.release(room)
        log.warning("join refused: %s", exc, extra=fields)
        await connection.close(exc.close_code, str(exc))
        return
    metrics.CONNECTIONS.inc()
    fields["client"] = str(client.id)
    reader = _Reader(registry.limits, room, client, registry.awareness_budgets.get(peer.user_id))
    # How reading ended, when the transport hands messages over as they arrive.
    ended: asyncio.Future[BaseException] = asyncio.get_running_loop().create_future()

    def on_message(frame: bytes) -> None:
        if ended.done():
            return  # closing: what the client sends meanwhile is not applied
        try:
            reader.feed(frame)
        except Exception as exc:
            if not ended.done():
                ended.set_result(exc)

    def on_end(exc: BaseException) -> None:
        if not ended.done():
            ended.set_result(exc)

    # How the client's writing ended: its failure (a full outbox, a lost peer), or None
    # once finished with the outbox drained (the room closed).
    written: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()

    def on_written(outcome: BaseException | None) -> None:
        if not written.done():
            written.set_result(outcome)

    # Whichever ends first ends the connection. Reading needs no task when the transport
    # hands messages over (``listen``), and writing none while nothing waits in the
    # outbox (``Client.start``): an idle connection has no task of its own, and no task
    # wakes per message. Not a TaskGroup: on Python 3.11 a TaskGroup whose child failed
    # can swallow the caller's cancellation.
    tasks: list[asyncio.Task[None]] = []
    if connection.listen(on_message, on_end):
        waited: list[asyncio.Future[Any]] = [written, ended]
    else:
        tasks.append(asyncio.create_task(_read(reader, connection)))
        waited = [written, *tasks]
    client.start(connection, on_written)
    try:
        await asyncio.wait(waited, return_when=asyncio.FIRST_COMPLETED)
    finally:
        writer = client.stop()
        if writer is not None:
            tasks.append(writer)
        for task in tasks:
            task.cancel()
        room.leave(client)
        registry.release(room)
        metrics.CONNECTIONS.dec()
        # ``wait``, not ``gather``: cancelled again while waiting, ``gather`` raises the
        # child's CancelledError, not ours, and a cancel scope (anyio's) no longer knows
        # it as its own and lets it escape.
        if tasks:
            await asyncio.wait(tasks)
    # The reader's end first, then the writer's: the first client error wins.
    errors = [t.exception() for t in tasks if not t.cancelled()]
    if ended.done():
        errors.insert(0, ended.result())
    if written.done():
        errors.append(written.result())
    close = _close_for([e for e in errors if e is not None], fields)
    if close is not None:
        await connection.close(*close)


def _close_for(errors: list[BaseException], fields: dict[str, str]) -> tuple[int, str] | None:
    """The close code for how the connection ended (the first client error wins), or
    ``None`` when the peer already went away and there is nobody to send a close to."""
    for error in errors:
        if isinstance(error, CollabError):
            metrics.CLOSED.labels(type(error).__name__).inc()
            log.warning(
                "closing connection: %s", error, extra={**fields, "code": int(error.close_code)}
            )
            return error.close_code, str(error)[:120]
    for error in errors:
        if not isinstance(error, Disconnected):
            metrics.CLOSED.labels("InternalError").inc()
            log.error("connection failed", exc_info=error, extra=fields)
            return CloseCode.INTERNAL_ERROR, "internal error"
    if errors:
        return None
    return CloseCode.NORMAL, ""


class _Reader:
    """What one received message goes through: size and rate limits, then the room."""

    __slots__ = ("_bucket", "_client", "_limits", "_presence", "_room", "_syncs")

    def __init__(self, limits: Limits, room: Room, client: Client, presence: TokenBucket) -> None:
        self._limits = limits
        self._room = room
        self._client = client
        self._presence = presence
        self._bucket = TokenBucket(limits.messages_per_second, limits.message_burst)
        self._syncs = TokenBucket(limits.sync_requests_per_second, limits.sync_request_burst)

    def feed(self, frame: bytes) -> None:
        """Applies one message. Raises :class:`CollabError` for a client's fault."""
        limits = self._limits
        metrics.BYTES_IN.inc(len(frame))
        self._client.bytes_in += len(frame)
        if len(frame) > limits.max_message_bytes:
            raise MessageTooBig(f"message of {len(frame)} bytes exceeds {limits.max_message_bytes}")
        if not self._bucket.take():
            raise RateLimited(f"more than {limits.messages_per_second:g} messages/s")
        kind = frame[:1]
        if kind == _AWARENESS and not self._presence.take(len(frame)):
            raise RateLimited(f"more than {limits.awareness_bytes_per_second:g} presence bytes/s")
        if kind == _SYNC and frame[1:2] == b"\x00" and not self._syncs.take():
            raise RateLimited(f"more than {limits.sync_requests_per_second:g} sync requests/s")
        self._room.receive(self._client, frame)


async def _read(reader: _Reader, connection: Connection) -> None:
    while True:
        reader.feed(await connection.receive())


_SYNC = b"\x00"
_AWARENESS = b"\x01"
