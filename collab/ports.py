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

    def send_many_nowait(self, data: Sequence[bytes]) -> bool:
        """Sends several binary messages, in order, in one write if the transport can take
        them now (a large first sync's slices: one system call instead of one each).

        ``False`` means nothing was sent: use :meth:`send`. Never raises.
        """
        ...

    async def drained(self) -> None:
        """Returns once the transport can take more without waiting (at once if it can).

        Raises:
            Disconnected: the peer went away.
        """
        ...

    async def close(self, code: int, reason: str = "") -> None:
        """Closes with a code; never raises."""
        ...

    def listen(
        self, on_message: Callable[[bytes], None], on_end: Callable[[BaseException], None]
    ) -> bool:
        """Hands every message to ``on_message`` as it arrives, in order (those already
        received first), and how the connection ended to ``on_end`` (:class:`Disconnected`,
        :class:`UnsupportedData`), from the transport's own callbacks: no task has to wait
        in :meth:`receive` for the connection's whole life. Neither callback may raise.

        ``False`` means the transport cannot: use :meth:`receive`. After ``True``,
        :meth:`receive` must not be called.
        """
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
        # One transaction: half the time of one per update (30,000 tail entries of a
        # lesson: 0.16 s against 0.30 s), and nobody observes the document yet.
        with doc.transaction():
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

    async def compact(self, name: DocumentName) -> int:
        """Folds the tail into a new snapshot without changing the document's content, and
        returns the snapshot's size as an update (before any compression the store
        applies; 0 for a document never written). The log itself is kept."""
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


NodeId = NewType("NodeId", str)


class BusListener(Protocol):
    """What a document's subscriber hears from the other nodes holding the document.

    Called on the loop, never concurrently; a listener must not raise (the bus logs and
    drops what it raises).
    """

    def on_bus_update(self, node: NodeId, seq: int, update: bytes, durable: bool) -> None:
        """An update ``node`` applied (``seq`` is its frame number; DIFFs too).
        ``durable``: ``node`` had saved all of its own changes when it sent this."""
        ...

    def on_bus_awareness(self, node: NodeId, payload: bytes) -> None:
        """Awareness entries of ``node``'s own clients."""
        ...

    def on_bus_state(self, node: NodeId, state_vector: bytes, digest: bytes, flags: int) -> None:
        """``node``'s state vector and delete-set digest: answer with what it lacks.
        ``flags``: bit 0, it has just (re)joined and also wants this node's presence;
        bit 1, it is itself an answer (answer it with a diff at most, never a state)."""
        ...

    def on_bus_saved(self, node: NodeId, seq: int) -> None:
        """``node``'s own updates up to frame ``seq`` are in the store."""
        ...

    def on_bus_lost(self) -> None:
        """Frames may have been lost (a sequence gap, a reconnect): catch up."""
        ...

    def on_node_gone(self, node: NodeId) -> None:
        """``node`` left or stopped answering: drop its presence, and keep what it had not
        yet saved."""
        ...


class BusSubscription(Protocol):
    """One room's membership of a document's channel. Sends never block and never raise:
    with the bus down they are dropped (and counted), and catch-up repairs it later."""

    seq: int
    """The sequence number of the last frame this subscription sent."""

    async def ready(self) -> None:
        """Returns once frames published from now on will reach this subscription (or the
        bus is down: catch-up on reconnect covers that case)."""
        ...

    def publish(self, update: bytes) -> int:
        """Sends an update to every other node; returns the frame's sequence number."""
        ...

    def publish_awareness(self, payload: bytes, *, to: NodeId | None = None) -> None:
        """Sends awareness entries of this node's clients (to one node, or to all)."""
        ...

    def publish_state(
        self, state_vector: bytes, digest: bytes, *, flags: int, to: NodeId | None = None
    ) -> None:
        """Announces this node's state (catch-up or anti-entropy)."""
        ...

    def send_diff(self, to: NodeId, update: bytes, *, durable: bool) -> None:
        """Sends ``to`` the update it lacks; ``durable``: this node has nothing unsaved."""
        ...

    def publish_saved(self, seq: int) -> None:
        """Tells the others this node's updates up to ``seq`` are durable."""
        ...

    def close(self) -> None:
        """Leaves the channel; idempotent."""
        ...


class ControlKind(Enum):
    END_USER = "end_user"
    END_CLASSROOM = "end_classroom"
    ACCESS_REVOKED = "access_revoked"
    CLASSROOM_ARCHIVED = "classroom_archived"


@dataclass(frozen=True, slots=True)
class ControlCall:
    """An event every node must apply at least once: end the matching connections.

    ``user`` and ``classroom`` select connections (both: that user in that classroom).
    """

    kind: ControlKind
    user: str | None = None
    classroom: str | None = None
    reason: str = ""


ControlHandler = Callable[[ControlCall], None]

AskHandler = Callable[[bytes], bytes]
"""Answers a question another node asked (:meth:`Bus.ask`) about this node; runs on the
loop, so it must be quick. Raising means no answer (the asker reports this node missing)."""


@dataclass(frozen=True, slots=True)
class Answers:
    """What :meth:`Bus.ask` gathered: each answering node's reply (this node's included),
    and the nodes alive when it asked that did not answer before the deadline."""

    replies: dict[NodeId, bytes]
    missing: tuple[NodeId, ...]


class Bus(Protocol):
    """Fan-out between server nodes: document updates (at-most-once, repaired by catch-up
    and anti-entropy), presence, node liveness, control calls (at-least-once), and
    questions every node answers (at-most-once, gathered with a deadline)."""

    node_id: NodeId

    @property
    def connected(self) -> bool:
        """Whether frames currently reach the other nodes."""
        ...

    @property
    def peers(self) -> int:
        """How many other nodes were heard from recently."""
        ...

    def subscribe(self, name: DocumentName, listener: BusListener) -> BusSubscription:
        """Joins ``name``'s channel; frames the other nodes send reach ``listener``."""
        ...

    def on_control(self, handler: ControlHandler) -> None:
        """Registers the handler control calls are delivered to (on every node)."""
        ...

    async def publish_control(self, call: ControlCall) -> None:
        """Publishes a control call to every node, this one included.

        Raises:
            BusUnavailable: the call could not be recorded.
        """
        ...

    def on_ask(self, handler: AskHandler) -> None:
        """Registers the handler that answers other nodes' questions (and this node's)."""
        ...

    async def ask(self, question: bytes, *, wait: float) -> Answers:
        """Asks every node (this one included) and gathers the replies until each node
        alive now has answered or ``wait`` seconds have passed. At-most-once: a lost
        question or reply shows as a missing node, never as an error.

        Raises:
            ValueError: ``question`` is over 64 KiB.
            BusUnavailable: too many questions are waiting for replies already.
        """
        ...

    async def run(self) -> None:
        """Keeps the node connected (heartbeats, liveness of peers, reconnects) until
        cancelled; on cancellation says goodbye so peers drop this node's presence."""
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
