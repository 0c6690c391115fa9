"""Raw y-websocket frames over a real socket: what an attacker sends, byte for byte."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import websockets
from pycrdt import Doc

from collab.protocol import AwarenessMessage, SyncStep1, SyncUpdate, decode
from collab.updates import deletion


class RawClient:
    """Sends exactly the frames it is told to; records what comes back and how it ends."""

    def __init__(self, url: str, *, read: bool = True) -> None:
        self.url = url
        self.read = read
        self.frames: list[bytes] = []
        self._arrived = asyncio.Event()
        self.close_code: int | None = None
        self.closed = asyncio.Event()
        self.ws: websockets.ClientConnection | None = None
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> RawClient:
        self.ws = await websockets.connect(self.url, max_size=None, max_queue=None)
        if self.read:
            self._task = asyncio.create_task(self._reader())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.ws is not None:
            await self.ws.close()

    async def _reader(self) -> None:
        assert self.ws is not None
        try:
            async for frame in self.ws:
                assert isinstance(frame, bytes)
                self.frames.append(frame)
                self._arrived.set()
        except websockets.ConnectionClosed:
            pass
        finally:
            self.close_code = self.ws.close_code
            self.closed.set()
            self._arrived.set()

    async def until(self, predicate: Callable[[], bool], deadline: float = 5.0) -> None:
        """Waits for ``predicate`` to hold, re-checked on every frame that arrives."""
        async with asyncio.timeout(deadline):
            while not predicate():
                self._arrived.clear()
                await self._arrived.wait()

    async def send(self, frame: bytes) -> None:
        assert self.ws is not None
        await self.ws.send(frame)

    async def wait_closed(self, deadline: float = 5.0) -> int | None:
        async with asyncio.timeout(deadline):
            await self.closed.wait()
        return self.close_code


def update_frame(update: bytes) -> bytes:
    return bytes(SyncUpdate(update))


def pending_delete(client: int, start: int, length: int) -> bytes:
    """An update with no structs and a delete set for ranges that do not exist yet."""
    return update_frame(deletion({client: [(start, length)]}))


def hello() -> bytes:
    return bytes(SyncStep1(Doc().get_state()))


def awareness_frame(payload: bytes) -> bytes:
    return bytes(AwarenessMessage(payload))


def decoded(frames: list[bytes]) -> list[Any]:
    return [decode(f) for f in frames]
