"""In-process adapters: a store and a bus for the embedded default and for tests."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime

from .compaction import fold
from .history import as_utc, check_limit, contributions_of, page_of, replay
from .ports import (
    BusHandler,
    Contribution,
    Disconnected,
    DocumentName,
    HistoryEntry,
    HistoryPage,
    LoadedDocument,
    PastState,
    StoredUpdate,
)

log = logging.getLogger("inkroom.collab.memory")


class MemoryStore:
    """A :class:`~collab.ports.Store` kept in a dict; ``fail`` makes every call raise."""

    def __init__(self) -> None:
        self.snapshots: dict[str, bytes] = {}
        self.logs: dict[str, list[StoredUpdate]] = defaultdict(list)
        self.compacted: dict[str, int] = defaultdict(int)
        self.fail = False

    def _check(self) -> None:
        if self.fail:
            raise OSError("store unavailable")

    async def load(self, name: DocumentName) -> LoadedDocument:
        self._check()
        entries = self.logs[name][self.compacted[name] :]
        return LoadedDocument(
            self.snapshots.get(name), [u.data for u in entries], [u.author for u in entries]
        )

    async def append(self, batches: Mapping[DocumentName, Sequence[StoredUpdate]]) -> None:
        self._check()
        for name, updates in batches.items():
            self.logs[name].extend(updates)

    async def compact(self, name: DocumentName) -> None:
        self._check()
        upto = len(self.logs[name])
        tail = [u.data for u in self.logs[name][self.compacted[name] : upto]]
        self.snapshots[name] = fold(self.snapshots.get(name), tail)
        self.compacted[name] = upto

    def _entries(self, name: DocumentName) -> list[HistoryEntry]:
        return [
            HistoryEntry(i + 1, u.author, u.created_at, u.data)
            for i, u in enumerate(self.logs.get(name, ()))
        ]

    async def history(
        self,
        name: DocumentName,
        *,
        after: int = 0,
        limit: int = 100,
        author: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> HistoryPage:
        self._check()
        limit = check_limit(limit)
        entries = self._entries(name)[max(0, after) :]
        return page_of(entries, limit, author, as_utc(since), as_utc(until))

    async def contributions(
        self, name: DocumentName, *, since: datetime | None = None, until: datetime | None = None
    ) -> list[Contribution]:
        self._check()
        return contributions_of(self._entries(name), as_utc(since), as_utc(until))

    async def state_at(self, name: DocumentName, at: datetime) -> PastState:
        self._check()
        log = self.logs.get(name, [])
        at = as_utc(at) or at
        upto = max((i + 1 for i, u in enumerate(log) if u.created_at <= at), default=0)
        start, snapshot = 0, None
        if 0 < self.compacted[name] <= upto:
            start, snapshot = self.compacted[name], self.snapshots.get(name)
        return PastState(upto, replay(snapshot, [u.data for u in log[start:upto]]))


class LocalBus:
    """A :class:`~collab.ports.Bus` between registries of one process.

    With one registry (the embedded default) nothing is delivered: there is no other node.
    Several registries sharing one ``LocalBus`` behave like nodes sharing Redis.
    """

    def __init__(self) -> None:
        self._channels: dict[str, list[_LocalSubscription]] = defaultdict(list)

    def subscribe(self, name: DocumentName, handler: BusHandler) -> _LocalSubscription:
        subscription = _LocalSubscription(self._channels, name, handler)
        self._channels[name].append(subscription)
        return subscription


class _LocalSubscription:
    def __init__(
        self, channels: dict[str, list[_LocalSubscription]], name: str, handler: BusHandler
    ) -> None:
        self._channels = channels
        self._name = name
        self._handler = handler

    def publish(self, update: bytes) -> None:
        others = [s for s in self._channels.get(self._name, ()) if s is not self]
        if not others:
            return
        loop = asyncio.get_running_loop()
        for subscriber in others:
            # Delivered on a later loop turn, like a message from another node.
            loop.call_soon(subscriber._deliver, update)

    def _deliver(self, update: bytes) -> None:
        try:
            self._handler(update)
        except Exception:
            log.exception("bus handler failed")

    def close(self) -> None:
        subscribers = self._channels.get(self._name)
        if subscribers and self in subscribers:
            subscribers.remove(self)
            if not subscribers:
                del self._channels[self._name]


class PipeConnection:
    """One end of an in-memory, message-oriented duplex pipe (tests and benchmarks)."""

    def __init__(self) -> None:
        self._inbox: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.peer: PipeConnection | None = None
        self.closed_with: tuple[int, str] | None = None

    @classmethod
    def pair(cls) -> tuple[PipeConnection, PipeConnection]:
        a, b = cls(), cls()
        a.peer, b.peer = b, a
        return a, b

    async def receive(self) -> bytes:
        data = await self._inbox.get()
        if data is None:
            code = self.peer.closed_with[0] if self.peer and self.peer.closed_with else None
            raise Disconnected(code)
        return data

    async def send(self, data: bytes) -> None:
        if not self.send_nowait(data):
            raise Disconnected()

    def send_nowait(self, data: bytes) -> bool:
        if self.closed_with is not None or self.peer is None or self.peer.closed_with is not None:
            return False
        self.peer._inbox.put_nowait(data)
        return True

    async def close(self, code: int, reason: str = "") -> None:
        if self.closed_with is None:
            self.closed_with = (code, reason)
            self._inbox.put_nowait(None)
            if self.peer is not None:
                self.peer._inbox.put_nowait(None)
