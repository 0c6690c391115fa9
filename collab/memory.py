"""In-process adapters: a store and a bus for the embedded default and for tests."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from .compaction import fold
from .errors import BusUnavailable
from .fanout import NODES_CHANNEL, FramedBus
from .history import as_utc, check_limit, contributions_of, page_of, replay
from .ports import (
    Contribution,
    ControlCall,
    Disconnected,
    DocumentName,
    HistoryEntry,
    HistoryPage,
    LoadedDocument,
    NodeId,
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

    async def compact(self, name: DocumentName) -> int:
        self._check()
        upto = len(self.logs[name])
        if upto <= self.compacted[name]:
            return len(self.snapshots.get(name, b""))
        tail = [u.data for u in self.logs[name][self.compacted[name] : upto]]
        self.snapshots[name] = fold(self.snapshots.get(name), tail)
        self.compacted[name] = upto
        return len(self.snapshots[name])

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


class LocalBroker:
    """What Redis is to real nodes, for nodes in one process: channels of frames.

    ``drop`` (tests) decides, for each frame on its way to one receiving node, whether it
    is lost, as Redis pub/sub may lose it.
    """

    def __init__(self) -> None:
        self._channels: dict[str, list[LocalBus]] = defaultdict(list)
        self.nodes: list[LocalBus] = []
        self.drop: Callable[[str, bytes, LocalBus], bool] | None = None

    def send(self, sender: LocalBus, channel: str, frame: bytes) -> None:
        receivers = [b for b in self._channels.get(channel, ()) if b is not sender]
        if not receivers:
            return
        loop = asyncio.get_running_loop()
        for bus in receivers:
            if not bus.partitioned and not (self.drop and self.drop(channel, frame, bus)):
                # Delivered on a later loop turn, like a message from another node.
                loop.call_soon(bus._arrive, channel, frame)

    def heard_by_others(self, sender: LocalBus, channel: str) -> bool:
        """Whether a node other than ``sender`` has joined ``channel``."""
        return any(b is not sender for b in self._channels.get(channel, ()))

    def join(self, bus: LocalBus, channel: str) -> None:
        if bus not in self._channels[channel]:
            self._channels[channel].append(bus)

    def leave(self, bus: LocalBus, channel: str) -> None:
        members = self._channels.get(channel)
        if members and bus in members:
            members.remove(bus)
            if not members:
                del self._channels[channel]


class LocalBus(FramedBus):
    """A :class:`~collab.ports.Bus` node on an in-process :class:`LocalBroker`.

    With one node (the embedded default) nothing is delivered: there is no other node.
    Nodes made with :meth:`sibling` share a broker and behave like nodes sharing Redis;
    :attr:`partitioned` cuts one off (frames in and out are lost) until it is healed.
    """

    def __init__(
        self,
        broker: LocalBroker | None = None,
        *,
        node_id: NodeId | None = None,
        heartbeat_interval: float = 0.5,
        node_timeout: float = 2.0,
    ) -> None:
        super().__init__(node_id, heartbeat_interval=heartbeat_interval, node_timeout=node_timeout)
        self.broker = broker or LocalBroker()
        self.broker.nodes.append(self)

    def sibling(self, **kwargs: Any) -> LocalBus:
        """Another node on the same broker."""
        return LocalBus(
            self.broker,
            heartbeat_interval=kwargs.get("heartbeat_interval", self.heartbeat_interval),
            node_timeout=kwargs.get("node_timeout", self.node_timeout),
        )

    def _heard_by_others(self, channel: str) -> bool:
        # The embedded default is one node: every room's updates would be encoded as bus
        # frames for nobody (a tenth of the relay's CPU per update in a classroom).
        return self.broker.heard_by_others(self, channel)

    def _transmit(self, channel: str, frame: bytes) -> None:
        if self.partitioned:
            self._m.dropped("disconnected")
            return
        self.broker.send(self, channel, frame)

    def _arrive(self, channel: str, frame: bytes) -> None:
        if not self.partitioned:
            self.receive(channel, frame)

    def _join(self, channel: str) -> None:
        self.broker.join(self, channel)

    def _leave(self, channel: str) -> None:
        self.broker.leave(self, channel)

    async def publish_control(self, call: ControlCall) -> None:
        """Delivers to every node of the broker, this one included, on a later turn.

        Raises:
            BusUnavailable: this node is partitioned.
        """
        if self.partitioned:
            raise BusUnavailable("bus is disconnected")
        loop = asyncio.get_running_loop()
        for node in self.broker.nodes:
            loop.call_soon(node._deliver_control, call)

    async def run(self) -> None:
        self._join(NODES_CHANNEL)
        try:
            await self._beat_forever()
        finally:
            if not self.partitioned:
                self.goodbye()
            self._leave(NODES_CHANNEL)
            if self in self.broker.nodes:
                self.broker.nodes.remove(self)


class PipeConnection:
    """One end of an in-memory, message-oriented duplex pipe (tests and benchmarks)."""

    def __init__(self) -> None:
        self._inbox: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.peer: PipeConnection | None = None
        self.closed_with: tuple[int, str] | None = None
        self._listener: Callable[[bytes | None], None] | None = None

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

    def listen(
        self, on_message: Callable[[bytes], None], on_end: Callable[[BaseException], None]
    ) -> bool:
        """Delivers on a later turn of the loop, as a socket's data would arrive."""
        ended = False

        def deliver(data: bytes | None) -> None:
            nonlocal ended
            if ended:
                return
            if data is None:
                ended = True
                code = self.peer.closed_with[0] if self.peer and self.peer.closed_with else None
                on_end(Disconnected(code))
            else:
                on_message(data)

        loop = asyncio.get_running_loop()
        while not self._inbox.empty():
            loop.call_soon(deliver, self._inbox.get_nowait())

        def later(data: bytes | None) -> None:
            loop.call_soon(deliver, data)

        self._listener = later
        return True

    def _put(self, data: bytes | None) -> None:
        if self._listener is not None:
            self._listener(data)
        else:
            self._inbox.put_nowait(data)

    async def send(self, data: bytes) -> None:
        if not self.send_nowait(data):
            raise Disconnected()

    def send_nowait(self, data: bytes) -> bool:
        if self.closed_with is not None or self.peer is None or self.peer.closed_with is not None:
            return False
        self.peer._put(data)
        return True

    def send_many_nowait(self, data: Sequence[bytes]) -> bool:
        if self.closed_with is not None or self.peer is None or self.peer.closed_with is not None:
            return False
        for message in data:
            self.peer._put(message)
        return True

    async def drained(self) -> None:
        if self.closed_with is not None or self.peer is None or self.peer.closed_with is not None:
            raise Disconnected()

    async def close(self, code: int, reason: str = "") -> None:
        if self.closed_with is None:
            self.closed_with = (code, reason)
            self._put(None)
            if self.peer is not None:
                self.peer._put(None)
