"""A room's side of the bus: catch-up, anti-entropy, presence of other nodes' clients, and
the updates other nodes have not yet saved.

Catch-up. The registry subscribes a document's channel *before* loading it, so nothing
published during the load is missed (frames arriving then are held here until the room
exists); once loaded, the room announces its state vector and asks (``STATE_ASK``). Every
node holding the document answers with a diff of what the newcomer lacks (its unsaved
changes included) and its clients' presence. A sequence gap or a reconnect triggers the
same exchange; a periodic announcement without the ask flag is the backstop for a lost
last frame. Announcements carry a digest of the delete set too: a lost delete-only update
changes no state vector.

Durability. A node journals only its own clients' updates. The updates another node sent
are kept here until that node announces it saved them (``SAVED``); if it dies first, this
node journals what it holds, so an update a client saw acknowledged survives a kill -9.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from typing import TYPE_CHECKING, Final

from pycrdt import merge_updates

from .awareness import NULL_STATE, Entry, decode_entries, encode_entries
from .errors import InvalidUpdate, ProtocolError
from .fanout import STATE_ASK, STATE_REPLY
from .limits import Limits
from .ports import Bus, BusListener, DocumentName, NodeId
from .protocol import EMPTY_UPDATE
from .updates import decode_state_vector, merge_ranges, parse

if TYPE_CHECKING:
    from .room import Room

log = logging.getLogger("inkroom.collab.replication")

# Frames held while the room loads: past this, they are dropped and catch-up fetches them.
_EARLY_BYTES: Final = 16 * 1024 * 1024
# Unsaved updates kept per node before they are merged into one.
_UNSAVED_ENTRIES: Final = 64


class Replicator(BusListener):
    """Implements :class:`~collab.ports.BusListener` for one room."""

    def __init__(self, name: DocumentName, bus: Bus, limits: Limits) -> None:
        self.name = name
        self._bus = bus
        # When another node last spoke on this channel, and the document version this
        # room last announced: a quiet room nobody else holds announces nothing.
        self._peer_heard = -1e9
        self._announced_version = -1
        self._ticks = 0
        self._limits = limits
        self._sub = bus.subscribe(name, self)
        self._room: Room | None = None
        self._early: list[tuple[str, tuple[object, ...]]] = []
        self._early_bytes = 0
        # Other nodes' clients' presence: client id -> (node, entry, when received).
        self.remote: dict[int, tuple[NodeId, Entry, float]] = {}
        # Updates from other nodes they have not confirmed saved: node -> [(seq, update)].
        self.unsaved: dict[NodeId, list[tuple[int, bytes]]] = {}
        self._catch_up: asyncio.TimerHandle | None = None
        self._catch_up_flags = 0
        self._digest: tuple[int, bytes] | None = None

    async def ready(self) -> None:
        await self._sub.ready()

    def attach(self, room: Room) -> None:
        """The room is loaded: replay what arrived meanwhile, then ask for what it lacks."""
        self._room = room
        early, self._early = self._early, []
        self._early_bytes = 0
        for method, args in early:
            getattr(self, method)(*args)
        self.announce(STATE_ASK)

    def close(self) -> None:
        if self._catch_up is not None:
            self._catch_up.cancel()
        self._sub.close()
        self._room = None

    def _hold(self, method: str, *args: object) -> None:
        size = sum(len(a) for a in args if isinstance(a, bytes))
        if self._early_bytes + size <= _EARLY_BYTES:
            self._early.append((method, args))
            self._early_bytes += size
        # Dropped otherwise: the room's first announcement asks for everything it lacks.

    # -- outgoing ------------------------------------------------------------------------

    def publish(self, update: bytes) -> int:
        return self._sub.publish(update)

    def publish_awareness(self, entries: list[Entry]) -> None:
        self._sub.publish_awareness(encode_entries(entries))

    def saved(self, seq: int) -> None:
        if seq:
            self._sub.publish_saved(seq)

    @property
    def last_seq(self) -> int:
        return self._sub.seq

    def announce(self, flags: int = 0, to: NodeId | None = None) -> None:
        """Publishes this room's state vector and delete-set digest."""
        room = self._room
        if room is None:
            return
        self._announced_version = room.version
        self._sub.publish_state(room.doc.get_state(), self.digest(), flags=flags, to=to)

    def digest(self) -> bytes:
        """A digest of the delete set, recomputed only when the document changed."""
        room = self._room
        assert room is not None
        if self._digest is not None and self._digest[0] == room.version:
            return self._digest[1]
        deletes = parse(room.doc.get_update(room.doc.get_state()), values=False).deletes
        h = hashlib.blake2b(digest_size=12)
        for client in sorted(deletes):
            h.update(client.to_bytes(8, "little"))
            for clock, length in merge_ranges(deletes[client]):
                h.update(clock.to_bytes(8, "little") + length.to_bytes(8, "little"))
        value = h.digest()
        self._digest = (room.version, value)
        return value

    def tick(self, now: float | None = None) -> None:
        """Anti-entropy round: announce the state (no ask), expire stale remote presence.

        Skipped while no other node is alive; a room that did not change and heard from no
        other node for a while announces only every tenth round (another node may hold
        it, have lost everything this one sent, and be as quiet)."""
        now = time.monotonic() if now is None else now
        room = self._room
        self._ticks += 1
        if (
            room is not None
            and self._bus.peers
            and (
                room.version != self._announced_version
                or now - self._peer_heard < 30 * self._limits.anti_entropy_interval
                or self._ticks % 10 == 0
            )
        ):
            self.announce(0)
        ttl = self._limits.remote_presence_ttl
        stale = [cid for cid, (_, _, at) in self.remote.items() if now - at > ttl]
        self._remove_remote(stale)

    def _schedule_catch_up(self, flags: int) -> None:
        self._catch_up_flags |= flags
        if self._catch_up is None:
            # Coalesced: a burst of gaps asks once.
            self._catch_up = asyncio.get_running_loop().call_later(0.02, self._run_catch_up)

    def _run_catch_up(self) -> None:
        self._catch_up = None
        flags, self._catch_up_flags = self._catch_up_flags, 0
        self.announce(flags)

    # -- incoming (BusListener) ----------------------------------------------------------

    def on_bus_update(self, node: NodeId, seq: int, update: bytes, durable: bool) -> None:
        room = self._room
        if room is None:
            self._hold("on_bus_update", node, seq, update, durable)
            return
        self._peer_heard = time.monotonic()
        if update == EMPTY_UPDATE:
            return
        room.apply_remote(update)
        if durable:
            return
        kept = self.unsaved.setdefault(node, [])
        kept.append((seq, update))
        if len(kept) > _UNSAVED_ENTRIES:
            self.unsaved[node] = [(kept[-1][0], merge_updates(*(u for _, u in kept)))]

    def on_bus_saved(self, node: NodeId, seq: int) -> None:
        if self._room is None:
            self._hold("on_bus_saved", node, seq)
            return
        self._peer_heard = time.monotonic()
        kept = self.unsaved.get(node)
        if kept:
            rest = [(s, u) for s, u in kept if s > seq]
            if rest:
                self.unsaved[node] = rest
            else:
                del self.unsaved[node]

    def on_bus_state(self, node: NodeId, state_vector: bytes, digest: bytes, flags: int) -> None:
        room = self._room
        if room is None:
            self._hold("on_bus_state", node, state_vector, digest, flags)
            return
        self._peer_heard = time.monotonic()
        try:
            theirs = decode_state_vector(state_vector)
        except InvalidUpdate:
            log.warning("bad state vector from bus", extra={"document": self.name})
            return
        mine = decode_state_vector(room.doc.get_state())
        same_deletes = digest == self.digest()
        if flags & STATE_ASK:
            present = room.presence.snapshot()
            if present:
                self._sub.publish_awareness(encode_entries(present), to=node)
        they_lack = any(c > theirs.get(k, 0) for k, c in mine.items())
        if they_lack or not same_deletes:
            diff = room.doc.get_update(state_vector)
            self._sub.send_diff(node, diff, durable=room.journal.idle)
        we_lack = any(c > mine.get(k, 0) for k, c in theirs.items())
        if (we_lack or not same_deletes) and not flags & STATE_REPLY:
            # Answers never get answered with a state, only a diff: no ping-pong while an
            # update stays pending on one side.
            self.announce(STATE_REPLY, to=node)

    def on_bus_lost(self) -> None:
        self._schedule_catch_up(STATE_ASK)

    def on_bus_awareness(self, node: NodeId, payload: bytes) -> None:
        room = self._room
        if room is None:
            self._hold("on_bus_awareness", node, payload)
            return
        self._peer_heard = time.monotonic()
        try:
            entries = decode_entries(
                payload, max_state_bytes=self._limits.max_awareness_state_bytes
            )
        except ProtocolError:
            log.warning("bad awareness from bus", extra={"document": self.name})
            return
        now = time.monotonic()
        accepted = []
        for entry in entries:
            if room.presence.holds(entry.client_id):
                # One of this node's connections speaks for that id now (its client moved
                # here): the other node's word on it is stale.
                self.remote.pop(entry.client_id, None)
                continue
            current = self.remote.get(entry.client_id)
            if entry.removed:
                if current is not None and current[0] == node:
                    del self.remote[entry.client_id]
                    accepted.append(entry)
                continue
            if current is not None and current[0] == node and current[1].clock > entry.clock:
                continue
            if current is None and len(self.remote) >= self._limits.max_remote_presence:
                continue
            self.remote[entry.client_id] = (node, entry, now)
            accepted.append(entry)
        if accepted:
            room.broadcast_awareness_local(accepted)

    def keep_unsaved(self) -> None:
        """Journals every other node's unsaved updates (this node is stopping and cannot
        tell whether those nodes are still alive to save them): a duplicate row is
        harmless, a lost update is not."""
        for node in list(self.unsaved):
            self._keep(node)

    def on_node_gone(self, node: NodeId) -> None:
        room = self._room
        if room is None:
            self._hold("on_node_gone", node)
            return
        self._remove_remote([cid for cid, (n, _, _) in self.remote.items() if n == node])
        self._keep(node)

    def _keep(self, node: NodeId) -> None:
        room = self._room
        kept = self.unsaved.pop(node, None)
        if kept and room is not None:
            # It may have died before saving these: they are ours to keep now.
            update = kept[0][1] if len(kept) == 1 else merge_updates(*(u for _, u in kept))
            room.journal.record(update, None)
            log.warning(
                "journaling another node's unsaved updates",
                extra={"document": self.name, "peer": node, "updates": len(kept)},
            )

    def _remove_remote(self, client_ids: list[int]) -> None:
        room = self._room
        if not client_ids or room is None:
            return
        removals = []
        for cid in client_ids:
            _, entry, _ = self.remote.pop(cid)
            if not room.presence.holds(cid):
                removals.append(Entry(cid, entry.clock + 1, NULL_STATE))
        if removals:
            room.broadcast_awareness_local(removals)

    def shadowed(self, entry: Entry) -> bool:
        """Whether a local connection's ``entry`` only repeats another node's client.

        The stock client relays every awareness change it hears, others' included; on one
        node the owner's connection keeps the id, across nodes the id's owner is remote.
        A relay carries the clock this node sent; the id's own client, having moved here,
        renews with a newer one (or the old node's removal frees the id first)."""
        held = self.remote.get(entry.client_id)
        return held is not None and entry.clock <= held[1].clock

    def remote_snapshot(self) -> list[Entry]:
        return [entry for _, entry, _ in self.remote.values()]
