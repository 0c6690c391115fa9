"""Server-side awareness bookkeeping: who is present, and which connection speaks for whom.

The server keeps no awareness participant of its own. It relays entries with the same
clock rules as the Yjs client, refuses entries that would let one connection overwrite
or erase another connection's presence, and, when a connection goes away without saying
goodbye, produces the removal message its peers need at once (not 30 s later).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Final

from pycrdt import write_message, write_var_uint

from .errors import ProtocolError
from .protocol import Reader

NULL_STATE: Final = "null"


@dataclass(frozen=True, slots=True)
class Entry:
    """One ``(clientID, clock, JSON state)`` triple; ``state == "null"`` means removed."""

    client_id: int
    clock: int
    state: str

    @property
    def removed(self) -> bool:
        return self.state == NULL_STATE


def decode_entries(payload: bytes, *, max_state_bytes: int) -> list[Entry]:
    """Decodes an awareness update.

    States are checked to be JSON objects or ``null``: the JS client ``JSON.parse``s them
    without a guard, so one malformed state relayed would break every peer's handler.

    Raises:
        ProtocolError: truncated payloads, oversized or non-JSON states.
    """
    reader = Reader(payload)
    count = reader.read_var_uint()
    if count > reader.length:  # each entry needs at least three bytes
        raise ProtocolError(f"awareness update declares {count} entries in {reader.length} bytes")
    entries = []
    for _ in range(count):
        client_id = reader.read_var_uint()
        clock = reader.read_var_uint()
        state = reader.read_string()
        if len(state) > max_state_bytes:
            raise ProtocolError(f"awareness state of {len(state)} bytes exceeds {max_state_bytes}")
        if state != NULL_STATE:
            try:
                parsed = json.loads(state)
            except ValueError as exc:
                raise ProtocolError("awareness state is not valid JSON") from exc
            if not isinstance(parsed, dict):
                raise ProtocolError("awareness state is not a JSON object")
        entries.append(Entry(client_id, clock, state))
    reader.expect_end()
    return entries


def encode_entries(entries: list[Entry]) -> bytes:
    """Encodes entries as an awareness update payload."""
    parts = [write_var_uint(len(entries))]
    for entry in entries:
        parts.append(write_var_uint(entry.client_id))
        parts.append(write_var_uint(entry.clock))
        parts.append(write_message(entry.state.encode("utf-8")))
    return b"".join(parts)


class Presence:
    """The awareness states of one room and the owner of each client id.

    ``owner`` is any hashable token for a connection. Not thread-safe; lives on the loop.
    """

    def __init__(self, *, max_ids_per_owner: int = 8, id_grace: float = 120.0) -> None:
        self._entries: dict[int, Entry] = {}
        self._owner_of: dict[int, object] = {}
        self._user_of: dict[int, str] = {}
        # Ids whose connection left: (user, until). Only that user may take them back
        # before ``until``, so a reconnecting client (the stock one reuses its id) cannot
        # be impersonated, nor its clock poisoned, by whoever claims the id first.
        self._reserved: dict[int, tuple[str, float]] = {}
        self._max_ids_per_owner = max_ids_per_owner
        self._id_grace = id_grace

    def __len__(self) -> int:
        return sum(1 for e in self._entries.values() if not e.removed)

    def apply(
        self, owner: object, entries: list[Entry], *, user: str = "", now: float | None = None
    ) -> list[Entry]:
        """Applies entries sent by ``owner`` (a connection of ``user``); returns those
        accepted, to relay to everyone.

        An entry is accepted when its clock is newer (or equal, for a removal), as in Yjs,
        and the client id is unowned or owned by ``owner`` and not reserved for another
        user. A connection may claim at most ``max_ids_per_owner`` ids.
        """
        accepted = []
        for entry in entries:
            holder = self._owner_of.get(entry.client_id)
            if holder is not None and holder is not owner:
                continue
            if holder is None and not self._may_claim(entry.client_id, user, now):
                continue
            if (
                holder is None
                and not entry.removed
                and self._count_owned(owner) >= self._max_ids_per_owner
            ):
                continue
            current = self._entries.get(entry.client_id)
            if current is not None and not (
                current.clock < entry.clock
                or (current.clock == entry.clock and entry.removed and not current.removed)
            ):
                continue
            self._entries[entry.client_id] = entry
            if entry.removed:
                self._owner_of.pop(entry.client_id, None)
            else:
                self._owner_of[entry.client_id] = owner
                self._user_of[entry.client_id] = user
            accepted.append(entry)
        return accepted

    def _may_claim(self, client_id: int, user: str, now: float | None) -> bool:
        reserved = self._reserved.get(client_id)
        if reserved is None:
            return True
        holder, until = reserved
        if holder == user or (now if now is not None else time.monotonic()) >= until:
            del self._reserved[client_id]
            return True
        return False

    def drop_owner(self, owner: object, *, now: float | None = None) -> list[Entry]:
        """Removes every state ``owner`` controlled; returns the removal entries to broadcast.
        The ids stay reserved for their user for the grace period."""
        removals = []
        until = (now if now is not None else time.monotonic()) + self._id_grace
        for client_id in [cid for cid, o in self._owner_of.items() if o is owner]:
            del self._owner_of[client_id]
            self._reserved[client_id] = (self._user_of.pop(client_id, ""), until)
            current = self._entries[client_id]
            removal = Entry(client_id, current.clock + 1, NULL_STATE)
            self._entries[client_id] = removal
            removals.append(removal)
        self._prune()
        return removals

    def _prune(self) -> None:
        """Forgets removed ids once they dominate, so reconnecting phones cannot grow the
        table without bound. A forgotten id's stale update, if one ever arrived late,
        would show a cursor until its owner's next renewal or disconnect."""
        live = len(self)
        if len(self._entries) > 4 * live + 256:
            self._entries = {cid: e for cid, e in self._entries.items() if not e.removed}
        if len(self._reserved) > 4 * live + 256:
            now = time.monotonic()
            self._reserved = {c: r for c, r in self._reserved.items() if r[1] > now}

    def snapshot(self) -> list[Entry]:
        """Every present (non-removed) state, for a late joiner or a query."""
        return [e for e in self._entries.values() if not e.removed]

    def holds(self, client_id: int) -> bool:
        """Whether a connection currently speaks for ``client_id``."""
        return client_id in self._owner_of

    def owned_by(self, owner: object) -> list[int]:
        return [cid for cid, o in self._owner_of.items() if o is owner]

    def _count_owned(self, owner: object) -> int:
        return sum(1 for o in self._owner_of.values() if o is owner)
