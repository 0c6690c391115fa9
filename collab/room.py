"""One loaded document and the clients editing it."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Final

from pycrdt import Doc, TransactionEvent, UndoManager, merge_updates

from . import metrics
from .awareness import Entry, Presence, decode_entries, encode_entries
from .client import Client
from .errors import DocumentTooLarge, InvalidUpdate, RoomFull
from .journal import Journal
from .limits import Limits
from .ports import Bus, DocumentName, Hooks, Peer, Revert, Verdict
from .protocol import (
    EMPTY_UPDATE,
    AwarenessMessage,
    PermissionDenied,
    QueryAwareness,
    SyncStep1,
    SyncStep2,
    SyncUpdate,
    decode,
    encode_update,
)

log = logging.getLogger("inkroom.collab.room")


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
        bus: Bus,
        size: int = 0,
    ) -> None:
        self.name = name
        self.doc = doc
        self.journal = journal
        # Bytes of every update integrated since the last load: an upper bound of the
        # encoded document (merging only shrinks it), cheap to keep per update.
        self.size = size
        self.clients: dict[int, Client] = {}
        self.presence = Presence(max_ids_per_owner=limits.max_awareness_ids_per_connection)
        self._limits = limits
        self._hooks = hooks
        self._loop = asyncio.get_running_loop()
        self._origin: Origin = SERVER
        self._outgoing: list[tuple[Origin, bytes]] = []
        self._flush_scheduled = False
        self._subscription = doc.observe(self._on_change)
        self._bus = bus.subscribe(name, self._on_bus_update)

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
        client = Client(peer, outbox_limit=self._limits.outbox_messages)
        self.clients[client.id] = client
        client.send(bytes(SyncStep1(self.doc.get_state())))
        present = self.presence.snapshot()
        if present:
            client.send(bytes(AwarenessMessage(encode_entries(present))))
        return client

    def leave(self, client: Client) -> None:
        """Removes a client and tells everyone else its cursors are gone, right now."""
        if self.clients.pop(client.id, None) is None:
            return
        client.finish()
        removals = self.presence.drop_owner(client)
        if removals:
            self._broadcast_awareness(removals)

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
        elif isinstance(message, AwarenessMessage):
            entries = decode_entries(
                message.payload, max_state_bytes=self._limits.max_awareness_state_bytes
            )
            accepted = self.presence.apply(client, entries)
            if accepted:
                self._broadcast_awareness(accepted)
        elif isinstance(message, SyncStep1):
            try:
                update = self.doc.get_update(message.state_vector)
            except ValueError as exc:
                raise InvalidUpdate("corrupt state vector") from exc
            client.send(bytes(SyncStep2(update)))
        elif isinstance(message, QueryAwareness):
            client.send(bytes(AwarenessMessage(encode_entries(self.presence.snapshot()))))
        # PermissionDenied from a client carries nothing the server acts on.

    def _apply_from(self, client: Client, update: bytes) -> None:
        if update == EMPTY_UPDATE:
            return
        if self.size + len(update) > self._limits.max_document_bytes:
            raise DocumentTooLarge(f"document would exceed {self._limits.max_document_bytes} bytes")
        verdict = self._hooks.judge_write(client.peer, self, update)
        if verdict is Verdict.REJECT:
            self._deny(client, "rejected")
            return
        metrics.UPDATES_IN.inc()
        undo: UndoManager | None = None
        if isinstance(verdict, Revert):
            undo = UndoManager(scopes=list(verdict.scopes), capture_timeout_millis=0)
            undo.include_origin(client.id)
        self._origin = client
        try:
            with self.doc.transaction(origin=client.id):
                self.doc.apply_update(update)
        except ValueError as exc:
            raise InvalidUpdate(f"corrupt update: {exc}") from exc
        finally:
            self._origin = SERVER
        if undo is not None:
            # The undo is the server's own change: it goes to everyone, the sender too,
            # whose view drops what it was not allowed to write.
            undo.undo()
            self._deny(client, "reverted")

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

    def _on_bus_update(self, update: bytes) -> None:
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
        origin = self._origin
        if origin is not BUS:
            author = origin.peer.user_id if isinstance(origin, Client) else None
            self.journal.record(update, author)
            self._bus.publish(update)
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

    def _broadcast_awareness(self, entries: list[Entry]) -> None:
        # Echoed to the sender too, as the reference server does: the stock client counts
        # any incoming message as proof of life and reconnects after 30 s of silence.
        message = bytes(AwarenessMessage(encode_entries(entries)))
        for client in self.clients.values():
            client.send(message)

    # -- lifecycle -------------------------------------------------------------------

    def close(self) -> None:
        """Detaches observers; the registry calls this once the journal is idle."""
        self._bus.close()
        self.doc.unobserve(self._subscription)
        for client in list(self.clients.values()):
            client.finish()
