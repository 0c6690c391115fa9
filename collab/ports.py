"""The ports the collaboration core depends on. ``server`` supplies the adapters."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Any, NewType, Protocol

from pycrdt import Doc

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

    def send_nowait(self, data: bytes) -> bool:
        """Sends one binary message now if the transport can take it without waiting.

        ``False`` means nothing was sent: use :meth:`send`. Never raises.
        """
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
    # Who wrote each tail entry (same order); lets a room know who owns which client id.
    tail_authors: Sequence[str | None] = ()

    @property
    def tail_bytes(self) -> int:
        return sum(len(u) for u in self.tail)

    def to_doc(self) -> Doc[Any]:
        """A fresh document with the snapshot, then the tail, applied in order.

        Raises:
            ValueError: a stored update is corrupt.
        """
        doc: Doc[Any] = Doc()
        if self.snapshot is not None:
            doc.apply_update(self.snapshot)
        for update in self.tail:
            doc.apply_update(update)
        return doc


MAX_HISTORY_PAGE = 1000
"""The most entries one :meth:`Store.history` call returns."""


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One logged update with its place in the log (``seq`` counts from 1)."""

    seq: int
    author: str | None
    created_at: datetime
    data: bytes

    @property
    def size(self) -> int:
        return len(self.data)


@dataclass(frozen=True, slots=True)
class HistoryPage:
    """Entries in sequence order; ``next_after`` is the ``after`` of the next page, or
    ``None`` when this page reached the end of the (filtered) log."""

    entries: Sequence[HistoryEntry]
    next_after: int | None


@dataclass(frozen=True, slots=True)
class Contribution:
    """What one author (``None``: the server) wrote to a document."""

    author: str | None
    updates: int
    bytes: int
    first_at: datetime
    last_at: datetime


@dataclass(frozen=True, slots=True)
class PastState:
    """A document as it was: ``update`` rebuilds it on an empty document; it holds the
    log up to and including ``seq`` (0: nothing was written yet)."""

    seq: int
    update: bytes


class Store(Protocol):
    """Durable storage of documents as an append-only update log plus snapshots."""

    async def load(self, name: DocumentName) -> LoadedDocument:
        """Reads snapshot + tail. An unknown document loads empty. Raises on I/O failure."""
        ...

    async def append(self, batches: Mapping[DocumentName, Sequence[StoredUpdate]]) -> None:
        """Appends each document's updates, all in one transaction: every update is stored
        or none is. Raises on I/O failure."""
        ...

    async def compact(self, name: DocumentName) -> None:
        """Folds the tail into a new snapshot without changing the document's content."""
        ...

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
        """Logged updates with ``seq > after``, oldest first, at most ``limit`` (bounded by
        :data:`MAX_HISTORY_PAGE`), only ``author``'s if given, only those written in
        ``[since, until]`` if given. Raises ``ValueError`` for a limit below 1."""
        ...

    async def contributions(
        self, name: DocumentName, *, since: datetime | None = None, until: datetime | None = None
    ) -> list[Contribution]:
        """Updates and bytes per author (in ``[since, until]`` if given), most bytes first."""
        ...

    async def state_at(self, name: DocumentName, at: datetime) -> PastState:
        """The document as the log had it at ``at``: every update up to the last one
        written at or before ``at`` (a prefix of the log, so never a state with gaps),
        rebuilt from the newest snapshot that prefix covers, else from the start."""
        ...


class Verdict(Enum):
    ALLOW = "allow"
    REJECT = "reject"


@dataclass(frozen=True, slots=True)
class Sanitized:
    """Apply ``update`` (the incoming one with the parts the peer may not write removed)
    instead of what the peer sent, and send ``retract`` (if any) back to the peer alone so
    its own view drops what the server did not take. Nothing removed is ever broadcast,
    stored or counted toward the document's size."""

    update: bytes
    retract: bytes | None
    reason: str


@dataclass(frozen=True, slots=True)
class Refused:
    """Apply nothing: the update is dangerous as a whole (it would leave pending structs
    or deletes in the document, or writes under another user's client id)."""

    reason: str


Judgement = Verdict | Sanitized | Refused


BusHandler = Callable[[bytes], None]


class BusSubscription(Protocol):
    """One room's membership of a document's channel."""

    def publish(self, update: bytes) -> None:
        """Sends an update to every other subscriber (never back to this one); never
        blocks, never raises."""
        ...

    def close(self) -> None:
        """Leaves the channel; idempotent."""
        ...


class Bus(Protocol):
    """Fan-out of document updates between server nodes (at-most-once delivery)."""

    def subscribe(self, name: DocumentName, handler: BusHandler) -> BusSubscription:
        """Registers ``handler`` for updates the other subscribers publish."""
        ...


class Hooks(Protocol):
    """Policy that lives outside the core: who may write, and reactions to room lifecycle."""

    def judge_write(self, peer: Peer, room: Room, update: bytes) -> Judgement:
        """Called for each incoming update, before it is applied.

        ``ALLOW`` applies it; ``REJECT`` drops it (right for a peer none of whose writes
        will ever be accepted, such as an observer); :class:`Sanitized` applies a cleaned
        copy; :class:`Refused` drops a dangerous update. Runs on the loop for every
        update: its cost must not grow with the document.

        Raises:
            InvalidUpdate: the update does not parse.
        """
        ...

    def detailed_index(self, name: DocumentName) -> bool:
        """Whether the room's :class:`~collab.index.DocumentIndex` records map keys and
        depth (a policy reads them), or only roots."""
        ...

    def stamp_presence(self, peer: Peer, room: Room, state: dict[str, Any]) -> dict[str, Any]:
        """The awareness state to relay for ``peer``: fields that name the user come from
        the server's idea of who the peer is, never from the client."""
        ...

    def on_room_loaded(self, room: Room) -> None:
        """The room's document is loaded; observers may be attached to ``room.doc``."""
        ...

    def on_room_unloaded(self, room: Room) -> None:
        """The room is leaving memory; detach what ``on_room_loaded`` attached."""
        ...


class DefaultHooks:
    """Writes allowed unless the peer is read-only; no lifecycle reactions."""

    def judge_write(self, peer: Peer, room: Room, update: bytes) -> Judgement:
        return Verdict.REJECT if peer.read_only else Verdict.ALLOW

    def detailed_index(self, name: DocumentName) -> bool:
        return False

    def stamp_presence(self, peer: Peer, room: Room, state: dict[str, Any]) -> dict[str, Any]:
        return state

    def on_room_loaded(self, room: Room) -> None:
        return None

    def on_room_unloaded(self, room: Room) -> None:
        return None
