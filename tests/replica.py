"""The client side of the sync protocol around a pycrdt ``Doc``, shared by the test peers
(``tests/collab/peers.py`` over an in-memory pipe, ``tests/server/wspeer.py`` over a real
WebSocket): what to answer, what to apply, and what a local edit sends."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from pycrdt import Doc, TransactionEvent

from collab.protocol import Message, SyncStep1, SyncStep2, SyncUpdate


class Replica:
    """A client's copy of a document. ``changed`` is set on every change, local or remote."""

    def __init__(self) -> None:
        self.doc: Doc[Any] = Doc()
        self.synced = asyncio.Event()
        self.changed = asyncio.Event()
        self._outgoing: list[bytes] = []
        self._remote = False
        self.doc.observe(self._on_change)

    def _on_change(self, event: TransactionEvent) -> None:
        if not self._remote:
            self._outgoing.append(event.update)
        self.changed.set()

    def hello(self) -> bytes:
        """The frame a client opens with: its state vector."""
        return bytes(SyncStep1(self.doc.get_state()))

    def handle(self, message: Message) -> bytes | None:
        """Applies a sync message; returns the reply frame a SyncStep1 asks for."""
        if isinstance(message, SyncStep1):
            return bytes(SyncStep2(self.doc.get_update(message.state_vector)))
        if isinstance(message, SyncStep2 | SyncUpdate):
            self._remote = True
            try:
                self.doc.apply_update(message.update)
            finally:
                self._remote = False
            if isinstance(message, SyncStep2):
                self.synced.set()
        return None

    def edit(self, change: Callable[[Doc[Any]], Any]) -> list[bytes]:
        """Applies a local change in one transaction; returns the frames to send for it."""
        with self.doc.transaction():
            change(self.doc)
        outgoing, self._outgoing = self._outgoing, []
        return [bytes(SyncUpdate(update)) for update in outgoing]

    async def until(self, predicate: Callable[[], bool], deadline: float) -> None:
        """Waits for ``predicate`` to hold, re-checking on every change."""
        async with asyncio.timeout(deadline):
            while not predicate():
                self.changed.clear()
                await self.changed.wait()
