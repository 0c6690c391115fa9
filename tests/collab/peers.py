"""A scripted y-websocket peer over an in-memory pipe, for room and registry tests."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from contextlib import AsyncExitStack
from typing import Any

from pycrdt import Array, Doc

from collab.awareness import Entry, decode_entries, encode_entries
from collab.memory import PipeConnection
from collab.ports import DocumentName, Peer
from collab.protocol import (
    AwarenessMessage,
    Message,
    PermissionDenied,
    Saved,
    decode,
)
from collab.registry import Registry
from collab.session import serve
from tests.replica import Replica


class ScriptedPeer:
    """Speaks the protocol like the stock client, but every step is explicit and awaitable."""

    def __init__(self, registry: Registry, name: str, peer: Peer) -> None:
        self.registry = registry
        self.name = DocumentName(name)
        self.peer = peer
        self.conn, self.server_end = PipeConnection.pair()
        self.replica = Replica()
        self.doc = self.replica.doc
        self.synced = self.replica.synced
        self.changed = self.replica.changed
        self.presence: dict[int, str] = {}
        self.denied: list[str] = []
        self.received: list[Message] = []
        self.closed: asyncio.Future[tuple[int, str]] = asyncio.get_running_loop().create_future()
        self.task: asyncio.Task[None] | None = None
        self.reader: asyncio.Task[None] | None = None

    async def start(self, stack: AsyncExitStack, *, handshake: bool = True) -> ScriptedPeer:
        self.task = asyncio.create_task(serve(self.registry, self.server_end, self.name, self.peer))
        self.reader = asyncio.create_task(self._read())
        stack.push_async_callback(self.stop)
        if handshake:
            await self.conn.send(self.replica.hello())
            await wait_for(self.synced.wait())
        return self

    async def stop(self) -> None:
        await self.conn.close(1000)
        for task in (self.task, self.reader):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _read(self) -> None:
        from collab.ports import Disconnected

        try:
            while True:
                frame = await self.conn.receive()
                message = decode(frame)
                self.received.append(message)
                await self._handle(message)
        except Disconnected:
            closed = self.server_end.closed_with or (1006, "")
            if not self.closed.done():
                self.closed.set_result(closed)

    async def _handle(self, message: Message) -> None:
        reply = self.replica.handle(message)
        if reply is not None:
            await self.conn.send(reply)
        elif isinstance(message, AwarenessMessage):
            for entry in decode_entries(message.payload, max_state_bytes=1 << 20):
                if entry.removed:
                    self.presence.pop(entry.client_id, None)
                else:
                    self.presence[entry.client_id] = entry.state
            self.changed.set()
        elif isinstance(message, PermissionDenied):
            self.denied.append(message.reason)
            self.changed.set()
        elif isinstance(message, Saved):
            self.changed.set()

    async def edit(self, change: Callable[[Doc[Any]], Any]) -> None:
        """Applies a local change and sends the resulting update, like the provider does."""
        for frame in self.replica.edit(change):
            await self.conn.send(frame)

    async def say(self, client_id: int, clock: int, state: str) -> None:
        payload = encode_entries([Entry(client_id, clock, state)])
        await self.conn.send(bytes(AwarenessMessage(payload)))

    async def until(self, predicate: Callable[[], bool], deadline: float = 2.0) -> None:
        """Waits for ``predicate`` to hold, re-checking on every change this peer sees."""
        await self.replica.until(predicate, deadline)


async def wait_for(awaitable: Any, deadline: float = 2.0) -> Any:
    async with asyncio.timeout(deadline):
        return await awaitable


def state_vector(doc: Doc[Any]) -> dict[int, int]:
    """The state vector as a dict: its encoding's entry order is not canonical."""
    from collab.protocol import Reader

    reader = Reader(doc.get_state())
    return {reader.read_var_uint(): reader.read_var_uint() for _ in range(reader.read_var_uint())}


async def eventually(predicate: Callable[[], bool], deadline: float = 2.0) -> None:
    """Waits until ``predicate()`` holds, failing after ``deadline`` seconds.

    For server-internal state that has no event of its own (a journal's queue, the
    registry's room table); it re-checks every few milliseconds rather than sleeping a
    guessed duration, so it is as fast as the condition and bounded when it never holds.
    """
    async with asyncio.timeout(deadline):
        while not predicate():  # noqa: ASYNC110 - no event exists for this state
            await asyncio.sleep(0.002)


def push(value: object) -> Callable[[Doc[Any]], None]:
    """An edit appending ``value`` to the root array ``a``."""

    def change(doc: Doc[Any]) -> None:
        doc.get("a", type=Array).append(value)

    return change
