"""A y-websocket peer over a real WebSocket, driven step by step (pycrdt on the inside)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import websockets
from pycrdt import Doc

from collab.protocol import decode
from tests.replica import Replica


class WsPeer:
    """Joins a document, applies what arrives, sends what it edits."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.replica = Replica()
        self.doc = self.replica.doc
        self._ws: websockets.ClientConnection | None = None
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> WsPeer:
        self._ws = await websockets.connect(self.url, max_size=None)
        self._task = asyncio.create_task(self._read())
        await self._ws.send(self.replica.hello())
        async with asyncio.timeout(5):
            await self.replica.synced.wait()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._ws is not None:
            await self._ws.close()

    async def _read(self) -> None:
        assert self._ws is not None
        with contextlib.suppress(websockets.ConnectionClosed):
            async for frame in self._ws:
                assert isinstance(frame, bytes)
                reply = self.replica.handle(decode(frame))
                if reply is not None:
                    await self._ws.send(reply)

    async def edit(self, change: Callable[[Doc[Any]], Any]) -> None:
        assert self._ws is not None
        for frame in self.replica.edit(change):
            await self._ws.send(frame)

    async def until(self, predicate: Callable[[], bool], deadline: float = 5.0) -> None:
        await self.replica.until(predicate, deadline)
