"""Every bound the collaboration core enforces, in one place."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds and timings. Defaults suit a classroom of ~30 on one small node."""

    # A long lesson's first sync (SyncStep2) must fit: a dense board is a few MiB.
    max_message_bytes: int = 16 * 1024 * 1024
    # Frames queued for one client before it counts as too slow and is closed with 1013.
    outbox_messages: int = 1024
    # ... and bytes queued for one client (one larger message still fits an empty outbox).
    outbox_bytes: int = 8 * 1024 * 1024
    # Sustained messages per second per connection, and the burst allowed on top.
    messages_per_second: float = 300.0
    message_burst: int = 3000
    # A SyncStep1 costs the server a full-state encode: a tight budget of its own.
    sync_requests_per_second: float = 0.5
    sync_request_burst: int = 8
    # Presence: a roster entry or cursor is ~100 bytes; states beyond this are abuse.
    max_awareness_state_bytes: int = 4 * 1024
    max_awareness_ids_per_connection: int = 8
    # Awareness bytes per second per *user* (shared by the user's connections, so a
    # flooder closed for it does not come back at full rate), and the burst on top.
    awareness_bytes_per_second: float = 32 * 1024
    awareness_byte_burst: int = 128 * 1024
    # An awareness id stays bound to the user who last held it this long after they leave,
    # so nobody can take over a reconnecting user's cursor or poison its clock.
    awareness_id_grace: float = 120.0
    max_rooms: int = 10_000
    # Documents one namespace (the first path segment: a classroom) may hold loaded, so
    # one classroom cannot exhaust the node's ``max_rooms``.
    max_rooms_per_namespace: int = 32
    # Encoded size (snapshot + log since load) past which a document takes no more writes:
    # far above a long lesson's board (a few MiB), far below what would exhaust a node.
    max_document_bytes: int = 64 * 1024 * 1024
    max_clients_per_room: int = 500
    # Saves: wait for a quiet spell of ``save_debounce`` seconds, but never longer than
    # ``save_max_delay`` after the first unsaved change.
    save_debounce: float = 0.25
    save_max_delay: float = 2.0
    # A stock client counts itself synced on the server's SyncStep2. With this on, that
    # answer waits until the client's own SyncStep2 (its offline edits) is stored, so
    # "synced" means "saved" (at most ``hold_sync_timeout`` seconds, then it goes anyway).
    hold_sync_until_saved: bool = False
    hold_sync_timeout: float = 5.0
    # Clients that asked to hear when their changes are stored (SavedRequest): waiting
    # acknowledgements per client; beyond this the newest absorbs the others.
    max_saved_waits: int = 64
    save_retry_initial: float = 0.2
    save_retry_max: float = 10.0
    # When to fold the log into a snapshot. Every snapshot rewrites the whole document, so
    # a fixed cadence writes the document over and over (109x the bytes clients sent, for
    # a 5 MB board: bench/RESULTS.md). Instead the tail since the snapshot must reach
    # ``compact_growth`` times the snapshot's size (at least ``compact_after_bytes``):
    # snapshot sizes grow geometrically and their sum stays a fraction of the log. A tail
    # of ``compact_after_updates`` entries is folded whatever its size: each entry costs a
    # load time (applied, and read for the owners of its client ids).
    compact_after_updates: int = 50_000
    compact_after_bytes: int = 1024 * 1024
    compact_growth: float = 2.0
    # A room that unloads with at least this many log entries after its snapshot has them
    # folded in, so the next load (a board left mid-lesson) is a snapshot, not a long tail.
    fold_on_unload_updates: int = 256
    # An empty room stays loaded this long, so a reconnecting phone does not reload it.
    unload_grace: float = 30.0
    # Multi-node: every this many seconds each room announces its state vector (diffs are
    # sent only on a mismatch): the backstop for a lost last frame.
    anti_entropy_interval: float = 2.0
    # Wait this long for a document's channel subscription before loading it anyway.
    bus_ready_timeout: float = 2.0
    # Other nodes' presence entries not renewed for this long are dropped (clients renew
    # every 15 s), and at most this many are kept per room.
    remote_presence_ttl: float = 45.0
    max_remote_presence: int = 4096
    # Deadline for the final flush when the node shuts down.
    shutdown_flush_timeout: float = 10.0
