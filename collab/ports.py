"""The ports the collaboration core depends on. ``server`` supplies the adapters."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, NewType, Protocol

if TYPE_CHECKING:
    from .room import Room

DocumentName = NewType("DocumentName", str)


@dataclass(frozen=True, slots=True)
class Peer:
    """Who is on the other end of a connection, as the server authenticated them."""

    user_id: str
    name: str = ""
    role: str = "student"
    read_only: bool = False
    labels: dict[str, str] = field(default_factory=dict)


class Disconnected(Exception):
    """The transport closed; ``code`` is the close code the peer sent, if any."""

    def __init__(self, code: int | None = None) -> None:
        super().__init__(f"disconnected ({code})")
        self.code = code


class Connection(Protocol):
    """A message-oriented, bidirectional transport (a WebSocket, or a pipe in tests)."""

    async def receive(self) -> bytes:
        """The next binary message.

        Raises:
            Disconnected: the peer went away.
            UnsupportedData: a text message arrived.
            MessageTooBig: the message exceeds the transport's limit.
        """
        ...

    async def send(self, data: bytes) -> None:
        """Sends one binary message. Raises :class:`Disconnected` if the peer is gone."""
        ...

    async def close(self, code: int, reason: str = "") -> None:
        """Closes with a code; never raises."""
        ...


@dataclass(frozen=True, slots=True)
class StoredUpdate:
    """One entry of a document's append-only log, with who wrote it and when."""

    data: bytes
    author: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class LoadedDocument:
    """A snapshot (if compacted) plus the log entries written after it, in order."""

    snapshot: bytes | None
    tail: Sequence[bytes]

    @property
    def tail_bytes(self) -> int:
        return sum(len(u) for u in self.tail)


class Store(Protocol):
    """Durable storage of documents as an append-only update log plus snapshots."""

    async def load(self, name: DocumentName) -> LoadedDocument:
        """Reads snapshot + tail. An unknown document loads empty. Raises on I/O failure."""
        ...

    async def append(self, name: DocumentName, updates: Sequence[StoredUpdate]) -> None:
        """Appends updates atomically: all are stored or none. Raises on I/O failure."""
        ...

    async def compact(self, name: DocumentName) -> None:
        """Folds the tail into a new snapshot without changing the document's content."""
        ...


BusHandler = Callable[[bytes], None]


class Bus(Protocol):
    """Fan-out of document updates between server nodes (at-most-once delivery)."""

    def subscribe(self, name: DocumentName, handler: BusHandler) -> Callable[[], None]:
        """Registers ``handler`` for updates other nodes publish; returns an unsubscriber."""
        ...

    def publish(self, name: DocumentName, update: bytes) -> None:
        """Sends an update to every other node; never blocks, never raises."""
        ...


class Hooks(Protocol):
    """Policy that lives outside the core: who may write, and reactions to room lifecycle."""

    def can_write(self, peer: Peer, room: Room) -> bool:
        """Called for each incoming update; ``False`` rejects it (the document never changes)."""
        ...

    def on_room_loaded(self, room: Room) -> None:
        """The room's document is loaded; observers may be attached to ``room.doc``."""
        ...

    def on_room_unloaded(self, room: Room) -> None:
        """The room is leaving memory; detach what ``on_room_loaded`` attached."""
        ...


class DefaultHooks:
    """Writes allowed unless the peer is read-only; no lifecycle reactions."""

    def can_write(self, peer: Peer, room: Room) -> bool:
        return not peer.read_only

    def on_room_loaded(self, room: Room) -> None:
        return None

    def on_room_unloaded(self, room: Room) -> None:
        return None


Sleeper = Callable[[float], Awaitable[None]]
