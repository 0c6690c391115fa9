"""Folding a log into a snapshot, and how snapshots are stored: pure, so it runs in a
thread and is property-tested (tests/collab/test_compaction_cadence.py)."""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Any

from pycrdt import Doc, get_update, merge_updates

from .errors import InvalidUpdate
from .updates import SKIP, decode_state_vector, parse

# A stored snapshot that starts with this is zlib-deflated. A v1 update starts with the
# varint count of its clients; these bytes would count 2^41 of them, which no update a
# store holds can have, so a plain snapshot (written before compression) never starts so.
COMPRESSED = b"\xff\xff\xff\xff\xff\x7fZ"
# Parts still to merge with ``merge_updates`` at once (its cost grows faster than linearly).
_MERGE_GROUP = 64


def fold(snapshot: bytes | None, tail: Sequence[bytes]) -> bytes:
    """One update with the same content as ``snapshot`` then ``tail``.

    The parts are applied to a document in one transaction and its state encoded once:
    linear in the log (``merge_updates`` of 100k board updates takes minutes), and the
    result is what a loaded room holds, consecutive items merged (a board's snapshot is
    about half the size ``merge_updates`` gives, and applies three times faster).

    A document leaves out what it could not integrate: an update whose dependencies are
    not in the parts (another node's change that committed after the tail's end). Those
    parts are merged in whole with ``merge_updates``, so the result still holds every
    item and delete of every part: never a document with a step missing (the pycrdt-store
    squash bug), however the log interleaves.

    Raises:
        ValueError: a part is corrupt.
    """
    parts = ([snapshot] if snapshot is not None else []) + [u for u in tail if u]
    if not parts:
        return b"\x00\x00"
    if len(parts) == 1:
        return parts[0]
    doc: Doc[Any] = Doc()
    with doc.transaction():
        for part in parts:
            doc.apply_update(part)
    state = doc.get_state()
    clocks = decode_state_vector(state)
    waiting = [part for part in parts if _waits(part, state, clocks)]
    return _merge([doc.get_update(), *waiting])


def _waits(part: bytes, state: bytes, clocks: dict[int, int]) -> bool:
    """Whether the document (at ``state``) lacks some of ``part``: structs past its clocks
    (pending), or deletes of items it does not have."""
    rest = get_update(part, state)  # the structs beyond ``state``, and every delete
    if rest == b"\x00\x00":
        return False
    try:
        update = parse(rest, values=False)
    except InvalidUpdate:
        return True  # kept whole: merge_updates decides, nothing is dropped here
    if any(s.ref != SKIP for _, _, group in update.groups for s in group):
        return True
    return any(
        clock + length > clocks.get(client, 0)
        for client, ranges in update.deletes.items()
        for clock, length in ranges
    )


def _merge(parts: list[bytes]) -> bytes:
    while len(parts) > 1:
        parts = [
            merge_updates(*parts[i : i + _MERGE_GROUP]) if len(parts) - i > 1 else parts[i]
            for i in range(0, len(parts), _MERGE_GROUP)
        ]
    return parts[0]


def pack_snapshot(update: bytes) -> bytes:
    """What a store writes for a snapshot: deflated (a board's state compresses ~2.5x,
    and every snapshot written counts against write amplification)."""
    return COMPRESSED + zlib.compress(update, 6)


def unpack_snapshot(stored: bytes) -> bytes:
    """The update a stored snapshot holds; plain (older) snapshots are read as they are.

    Raises:
        ValueError: a compressed snapshot is corrupt or truncated.
    """
    if not stored.startswith(COMPRESSED):
        return stored
    try:
        return zlib.decompress(stored[len(COMPRESSED) :])
    except zlib.error as exc:
        raise ValueError(f"corrupt compressed snapshot: {exc}") from exc
