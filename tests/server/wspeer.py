"""A y-websocket peer over a real WebSocket, driven step by step (pycrdt on the inside)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import websockets
from pycrdt import Doc, TransactionEvent

from collab.protocol import SyncStep1, SyncStep2, SyncUpdate, decode


class WsPeer:
    """Joins a document, applies what arrives, sends what it edits."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.doc: Doc[Any] = Doc()
        self.synced = asyncio.Event()
        self.changed = asyncio.Event()
        self._outgoing: list[bytes] = []
        self._remote = False
        self._ws: websockets.ClientConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self.doc.observe(self._on_change)

    def _on_change(self, event: TransactionEvent) -> None:
        if not self._remote:
            self._outgoing.append(event.update)
        self.changed.set()

    async def __aenter__(self) -> WsPeer:
        self._ws = await websockets.connect(self.url, max_size=None)
        self._task = asyncio.create_task(self._read())
        await self._ws.send(bytes(SyncStep1(self.doc.get_state())))
        async with asyncio.timeout(5):
            await self.synced.wait()
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
                message = decode(frame)
                if isinstance(message, SyncStep1):
                    update = self.doc.get_update(message.state_vector)
                    await self._ws.send(bytes(SyncStep2(update)))
                elif isinstance(message, SyncStep2 | SyncUpdate):
                    self._remote = True
                    try:
                        self.doc.apply_update(message.update)
                    finally:
                        self._remote = False
                    if isinstance(message, SyncStep2):
                        self.synced.set()

    async def edit(self, change: Callable[[Doc[Any]], Any]) -> None:
        assert self._ws is not None
        with self.doc.transaction():
            change(self.doc)
        outgoing, self._outgoing = self._outgoing, []
        for update in outgoing:
            await self._ws.send(bytes(SyncUpdate(update)))

    async def until(self, predicate: Callable[[], bool], deadline: float = 5.0) -> None:
        async with asyncio.timeout(deadline):
            while not predicate():
                self.changed.clear()
                await self.changed.wait()
