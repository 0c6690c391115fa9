"""One loaded document and the clients editing it."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections import deque
from collections.abc import Sequence
from typing import Any, Final

from pycrdt import Doc, TransactionEvent, merge_updates

from . import metrics
from .awareness import Entry, Presence, decode_entries, encode_entries
from .client import SYNC_SLICE_BYTES, Client
from .errors import DocumentTooLarge, InvalidUpdate, RoomFull
from .fullstate import FullState, SyncReply
from .index import DocumentIndex
from .journal import Journal
from .limits import Limits
from .ports import DocumentName, Hooks, Peer, Refused, Sanitized, Verdict
from .protocol import (
    EMPTY_STATE_VECTOR,
    EMPTY_UPDATE,
    AwarenessMessage,
    PermissionDenied,
    QueryAwareness,
    Saved,
    SavedRequest,
    SyncStep1,
    SyncStep2,
    SyncUpdate,
    decode,
    encode_update,
)
from .replication import Replicator
from .updates import decode_state_vector, parse, writers

log = logging.getLogger("inkroom.collab.room")

# A saved wait that releases a held SyncStep1 answer rather than sending Saved.
_RELEASE_SYNC: Final = -1


class _Origin:
    """Marks updates that did not come from a local client."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


BUS: Final = _Origin("bus")
SERVER: Final = _Origin("server")
Origin = Client | _Origin


class Room:
    """A document in memory with its clients, presence and journal.

    Every change to :attr:`doc`, whoever makes it (a client, another node, server-side
    code), goes through one observer: it is broadcast once per room, journaled unless it
    came from the bus, and published to the bus unless it came from there.
    """

    def __init__(
        self,
        name: DocumentName,
        doc: Doc[Any],
        *,
        limits: Limits,
        hooks: Hooks,
        journal: Journal,
        replicator: Replicator,
        size: int = 0,
        authored: Sequence[tuple[bytes, str | None]] = (),
    ) -> None:
        self.name = name
        self.doc = doc
        self.journal = journal
        # Who wrote under each client id, how far each clock reaches and (for documents a
        # policy reads in detail) where each item hangs: judged writes consult it instead
        # of copying the document.
        self.index = _build_index(doc, hooks.detailed_index(name), authored)
        # Bytes of every update integrated since the last load: an upper bound of the
        # encoded document (merging only shrinks it), cheap to keep per update.
        self.size = size
        # Bumped on every change: caches keyed on the document's content check it.
        self.version = 0
        # What joiners share (collab/fullstate.py): the SyncStep1 frame and a small
        # document's SyncStep2 frame, each with the version it was encoded at, and a large
        # document's full state in slices.
        self._step1: tuple[int, bytes] = (-1, b"")
        self._step2: tuple[int, bytes] = (-1, b"")
        self._full: FullState | None = None
        # The last "what changed since the shared state" (version, base, update).
        self._rest: tuple[int, FullState | None, bytes | FullState] = (-1, None, b"")
        # Clients waiting for a saved acknowledgement.
        self._awaiting_save: set[Client] = set()
        self.clients: dict[int, Client] = {}
        self.presence = Presence(
            max_ids_per_owner=limits.max_awareness_ids_per_connection,
            id_grace=limits.awareness_id_grace,
        )
        self._limits = limits
        self._hooks = hooks
        self._loop = asyncio.get_running_loop()
        self._origin: Origin = SERVER
        self._outgoing: list[tuple[Origin, bytes]] = []
        self._flush_scheduled = False
        self._subscription = doc.observe(self._on_change)
        self.replicator = replicator
        journal.on_written = self._on_written

    def __repr__(self) -> str:
        return f"Room({self.name!r}, clients={len(self.clients)})"

    # -- membership ------------------------------------------------------------------

    def join(self, peer: Peer) -> Client:
        """Adds a client and queues the opening of the sync handshake for it.

        Raises:
            RoomFull: the room holds ``max_clients_per_room`` clients.
        """
        if len(self.clients) >= self._limits.max_clients_per_room:
            raise RoomFull(f"room holds {self._limits.max_clients_per_room} clients")
        client = Client(
            peer,
            outbox_limit=self._limits.outbox_messages,
            outbox_bytes=self._limits.outbox_bytes,
        )
        self.clients[client.id] = client
        if self._step1[0] != self.version:
            self._step1 = (self.version, bytes(SyncStep1(self.doc.get_state())))
        client.send(self._step1[1])
        present = self.presence.snapshot() + self.replicator.remote_snapshot()
        if present:
            client.send(bytes(AwarenessMessage(encode_entries(present))))
        return client

    def leave(self, client: Client) -> None:
        """Removes a client and tells everyone else its cursors are gone, right now."""
        if self.clients.pop(client.id, None) is None:
            return
        client.finish()
        self._awaiting_save.discard(client)
        if client.held_sync is not None:
            client.held_sync[1].cancel()
            client.held_sync = None
        removals = self.presence.drop_owner(client)
        if removals:
            self._broadcast_awareness(removals)
            self.replicator.publish_awareness(removals)

    # -- incoming --------------------------------------------------------------------

    def receive(self, client: Client, frame: bytes) -> None:
        """Handles one frame from ``client``.

        Raises:
            ProtocolError: the frame does not decode.
            InvalidUpdate: the update or state vector is corrupt; the document is unchanged.
        """
        message = decode(frame)
        if isinstance(message, SyncUpdate | SyncStep2):
            self._apply_from(client, message.update)
            if isinstance(message, SyncStep2) and not client.synced_in:
                client.synced_in = True
                if client.held_sync is not None:
                    self._wait_saved(client, _RELEASE_SYNC)
        elif isinstance(message, SavedRequest):
            self._wait_saved(client, message.marker)
        elif isinstance(message, AwarenessMessage):
            entries = decode_entries(
                message.payload, max_state_bytes=self._limits.max_awareness_state_bytes
            )
            entries = [self._stamp(client, e) for e in entries if not self.replicator.shadowed(e)]
            accepted = self.presence.apply(client, entries, user=client.peer.user_id)
            if accepted:
                # The stock client's awareness id is its document client id: whoever
                # speaks for it first owns it in the document too, so nobody who learns
                # the id from this very message can write under it before its owner does.
                owners = self.index.owners
                for entry in accepted:
                    if not entry.removed:
                        owners.setdefault(entry.client_id, client.peer.user_id)
                self._broadcast_awareness(accepted)
                self.replicator.publish_awareness(accepted)
        elif isinstance(message, SyncStep1):
            if (
                self._limits.hold_sync_until_saved
                and not client.answered
                and client.held_sync is None
            ):
                # "Synced" will mean "saved": answered once this client's own SyncStep2
                # (its offline edits, the stock client's answer to our SyncStep1) is
                # stored, or after the timeout for a client that never sends one.
                timer = self._loop.call_later(
                    self._limits.hold_sync_timeout, self._release_sync, client
                )
                client.held_sync = (message.state_vector, timer)
                if client.synced_in:  # its SyncStep2 came first
                    self._wait_saved(client, _RELEASE_SYNC)
                return
            self._answer(client, message.state_vector)
        elif isinstance(message, QueryAwareness):
            present = self.presence.snapshot() + self.replicator.remote_snapshot()
            client.send(bytes(AwarenessMessage(encode_entries(present))))
        # PermissionDenied from a client carries nothing the server acts on.

    def _answer(self, client: Client, state_vector: bytes) -> None:
        """Answers a SyncStep1: SyncStep2 with what the client lacks.

        Raises:
            InvalidUpdate: the state vector is corrupt.
        """
        client.answered = True
        if client.sync_reply_pending:
            # A reply to an earlier SyncStep1 is still queued: it holds everything this
            # one would (later changes follow it as updates), so it answers both. One
            # full-state reply per client at a time bounds what a non-reader can pin.
            return
        if state_vector == EMPTY_STATE_VECTOR:
            self._send_full_state(client)
            return
        try:
            update = self.doc.get_update(state_vector)
        except ValueError as exc:
            raise InvalidUpdate("corrupt state vector") from exc
        client.send_sync(update)

    # -- saved acknowledgements --------------------------------------------------------

    def _wait_saved(self, client: Client, marker: int) -> None:
        """Acknowledges ``marker`` once everything ``client`` sent so far is stored.

        Messages from one connection are handled in order and an update is recorded in
        the journal while it is applied, so "everything so far" is the journal's count
        now. Updates the policy refused are never stored and need no waiting.
        """
        journal = self.journal
        if journal.stored >= journal.recorded:
            self._acknowledge(client, marker)
            return
        waits = client.saved_waits
        if waits is None:
            waits = client.saved_waits = deque()
        if len(waits) >= self._limits.max_saved_waits and waits[-1][1] != _RELEASE_SYNC:
            waits.pop()  # the newest request covers the one it replaces
        waits.append((journal.recorded, marker))
        self._awaiting_save.add(client)

    def _acknowledge(self, client: Client, marker: int) -> None:
        if marker == _RELEASE_SYNC:
            self._release_sync(client)
        else:
            client.send(bytes(Saved(marker)))

    def _release_sync(self, client: Client) -> None:
        held, client.held_sync = client.held_sync, None
        if held is None or client.id not in self.clients:
            return
        state_vector, timer = held
        timer.cancel()
        try:
            self._answer(client, state_vector)
        except InvalidUpdate as exc:
            client.fail(exc)

    def _saved_through(self, stored: int) -> None:
        """Sends the acknowledgements that the journal's write just made true."""
        for client in list(self._awaiting_save):
            waits = client.saved_waits
            assert waits is not None
            while waits and waits[0][0] <= stored:
                self._acknowledge(client, waits.popleft()[1])
            if not waits:
                self._awaiting_save.discard(client)

    def _send_full_state(self, client: Client) -> None:
        """Answers a client that holds nothing with the shared encoding of the document."""
        if self._step2[0] == self.version:
            client.send(self._step2[1], sync_reply=True)
            return
        full = self._full
        if full is None or full.stale(self.size) or full.slice_bytes != client.slice_bytes:
            update = self.doc.get_update()
            if len(update) <= client.slice_bytes:
                self._full = None
                self._step2 = (self.version, bytes(SyncStep2(update)))
                client.send(self._step2[1], sync_reply=True)
                return
            full = FullState(
                update, self.doc.get_state(), written_at=self.size, slice_bytes=client.slice_bytes
            )
            if client.slice_bytes == SYNC_SLICE_BYTES:  # tests cut finer: not shared
                self._full = full
        client.send_reply(SyncReply(full, functools.partial(self._rest_of, full)))

    def _rest_of(self, base: FullState) -> bytes | FullState:
        """What changed since ``base`` was encoded, when a joiner's last message leaves:
        computed once per version of the document, since a storm's joiners all ask for
        the same (0.3 ms each on a 2 MB board), and shared in slices when large (the
        shared state may trail by up to a quarter of the document: cutting that for each
        of 200 joiners was 12 s of CPU)."""
        version, cached_base, rest = self._rest
        if version == self.version and cached_base is base:
            return rest
        update = self.doc.get_update(base.state_vector)
        rest = update
        if len(update) > base.slice_bytes:
            rest = FullState(update, b"", written_at=self.size, slice_bytes=base.slice_bytes)
        self._rest = (self.version, base, rest)
        return rest

    def _stamp(self, client: Client, entry: Entry) -> Entry:
        if entry.removed:
            return entry
        state = json.loads(entry.state)  # decode_entries checked it is a JSON object
        stamped = self._hooks.stamp_presence(client.peer, self, state)
        if stamped is state:
            return entry
        return Entry(entry.client_id, entry.clock, json.dumps(stamped, separators=(",", ":")))

    def _apply_from(self, client: Client, update: bytes) -> None:
        if update == EMPTY_UPDATE:
            return
        verdict = self._hooks.judge_write(client.peer, self, update)
        retract: bytes | None = None
        if verdict is Verdict.REJECT:
            self._deny(client, "rejected")
            return
        if isinstance(verdict, Refused):
            metrics.REFUSED_WRITES.labels(verdict.reason).inc()
            self._deny(client, f"refused ({verdict.reason})")
            return
        if isinstance(verdict, Sanitized):
            update, retract = verdict.update, verdict.retract
        # Counted after judging: what the policy removed never fills the document.
        if self.size + len(update) > self._limits.max_document_bytes:
            raise DocumentTooLarge(f"document would exceed {self._limits.max_document_bytes} bytes")
        metrics.UPDATES_IN.inc()
        self._origin = client
        try:
            with self.doc.transaction(origin=client.id):
                self.doc.apply_update(update)
        except ValueError as exc:
            raise InvalidUpdate(f"corrupt update: {exc}") from exc
        finally:
            self._origin = SERVER
        if isinstance(verdict, Sanitized):
            if retract is not None:
                # Only to the sender: its view drops what the server did not take.
                client.send(encode_update(retract))
            self._deny(client, f"sanitized ({verdict.reason})")

    def _deny(self, client: Client, outcome: str) -> None:
        metrics.REJECTED_WRITES.inc()
        if not client.denied_notified:
            client.denied_notified = True
            client.send(bytes(PermissionDenied("read-only: this update is not allowed")))
            log.info(
                "write %s",
                outcome,
                extra={"document": self.name, "user": client.peer.user_id},
            )

    def apply_remote(self, update: bytes) -> None:
        """Applies an update another node sent: broadcast here, neither journaled (its node
        does that) nor published again."""
        self._origin = BUS
        try:
            self.doc.apply_update(update)
        except ValueError:
            log.warning("corrupt update from bus dropped", extra={"document": self.name})
        finally:
            self._origin = SERVER

    # -- outgoing --------------------------------------------------------------------

    def _on_change(self, event: TransactionEvent) -> None:
        update: bytes = event.update
        if update == EMPTY_UPDATE:
            return
        self.size += len(update)
        self.version += 1
        origin = self._origin
        author = origin.peer.user_id if isinstance(origin, Client) else None
        try:
            self.index.integrate(parse(update, values=False), author)
        except InvalidUpdate:  # yrs wrote it; a parse failure here is our bug, not input
            log.exception("index could not read an applied update", extra={"document": self.name})
        if origin is not BUS:
            self.journal.record(update, author, self.replicator.publish(update))
        self._outgoing.append((origin, update))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush_outgoing)

    def _flush_outgoing(self) -> None:
        """Sends what changed since the last loop turn, merged and encoded once per origin.

        Updates arriving in one burst (a reader draining its socket, a resync) leave as one
        message per run of consecutive updates from the same origin; the origin does not
        get its own changes back.
        """
        self._flush_scheduled = False
        outgoing, self._outgoing = self._outgoing, []
        start = 0
        while start < len(outgoing):
            origin = outgoing[start][0]
            end = start + 1
            while end < len(outgoing) and outgoing[end][0] is origin:
                end += 1
            run = [u for _, u in outgoing[start:end]]
            message = encode_update(run[0] if len(run) == 1 else merge_updates(*run))
            sent = 0
            for client in self.clients.values():
                if client is not origin and client.send(message):
                    sent += 1
            metrics.UPDATES_OUT.inc(sent)
            metrics.BYTES_OUT.inc(sent * len(message))
            start = end

    def _on_written(self, seq: int, idle: bool) -> None:
        # Everything this node published before now is saved when nothing is pending.
        self.replicator.saved(self.replicator.last_seq if idle else seq)
        if self._awaiting_save:
            self._saved_through(self.journal.stored)

    def broadcast_awareness_local(self, entries: list[Entry]) -> None:
        """Sends other nodes' presence changes to this room's clients."""
        self._broadcast_awareness(entries)

    def _broadcast_awareness(self, entries: list[Entry]) -> None:
        # Echoed to the sender too, as the reference server does: the stock client counts
        # any incoming message as proof of life and reconnects after 30 s of silence.
        message = bytes(AwarenessMessage(encode_entries(entries)))
        for client in self.clients.values():
            client.send(message)

    # -- lifecycle -------------------------------------------------------------------

    def close(self) -> None:
        """Detaches observers; the registry calls this once the journal is idle."""
        self.replicator.close()
        self._full = None
        self._rest = (-1, None, b"")
        self.doc.unobserve(self._subscription)
        for client in list(self.clients.values()):
            client.finish()


def _build_index(
    doc: Doc[Any], detailed: bool, authored: Sequence[tuple[bytes, str | None]]
) -> DocumentIndex:
    """The index of a freshly loaded document: places from its full state (only where a
    policy reads them), owners from the authored log entries still in the tail."""
    index = DocumentIndex(places=detailed)
    if detailed:
        index.integrate(parse(doc.get_update(), values=False), None)
    else:
        index.sv = decode_state_vector(doc.get_state())
    for data, author in authored:
        if author is None:
            continue
        try:
            clients = writers(data)
        except InvalidUpdate:
            continue
        for client in clients:
            index.owners.setdefault(client, author)
    return index
