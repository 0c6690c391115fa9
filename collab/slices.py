"""A large Yjs update cut into several smaller, valid updates (sans-IO).

A board's first sync is one update of a few MiB. Sent as one WebSocket message it holds
everything behind it (presence, heartbeats, live strokes) for as long as it takes to cross
a 3G link, and a client that measures liveness by what arrives sees nothing for all that
time. Cut into slices of bounded size, each slice is a complete v1 update the client
applies on arrival (it draws what it has), and small frames can go between slices.

Each slice holds a run of whole structs of the original, copied byte for byte with their
``(client, clock)`` position; only the last slice carries the delete set (copied as is).
Applied in order, the slices give exactly the document the whole update gives: a struct
whose origin or parent is in a later slice waits in the receiver's pending set until it
comes (Yjs and yrs both retry pending structs on every update).

Slices are produced lazily: the first leaves after reading its own bytes, not the whole
update, and reading skims (:class:`~collab.updates.Structs` without values: the update
comes from the server's own document, not from a client).
"""

from __future__ import annotations

from collections.abc import Iterator

from pycrdt import write_var_uint

from .updates import Structs

# Per-group header: struct count, client id (up to 8 bytes each as varUints) and clock.
_GROUP_HEADER_BYTES = 24
_EMPTY_DELETE_SET = b"\x00"


def slice_update(update: bytes, max_bytes: int) -> list[bytes]:
    """All of :func:`iter_slices` as a list."""
    return list(iter_slices(update, max_bytes))


def iter_slices(update: bytes, max_bytes: int) -> Iterator[bytes]:
    """``update`` as valid updates of at most about ``max_bytes`` each, in order.

    A slice exceeds ``max_bytes`` only when one struct alone does (a struct is never
    split), and by a few header bytes per client. An update no larger than ``max_bytes``
    comes back unchanged, as the only slice.

    Raises:
        InvalidUpdate: ``update`` is truncated or holds an unknown struct.
        ValueError: ``max_bytes`` is not positive.
    """
    if max_bytes <= 0:
        raise ValueError("max_bytes must be positive")
    if len(update) <= max_bytes:
        yield update
        return
    structs = Structs(update, values=False)
    # (client, first clock, [(start, end) of each struct]) per group of the slice
    groups: list[tuple[int, int, list[tuple[int, int]]]] = []
    run: list[tuple[int, int]] = []
    client = run_clock = 0
    size = 1
    for s in structs:
        if s.first:
            if run:
                groups.append((client, run_clock, run))
            client, run_clock, run = s.client, s.clock, []
            size += _GROUP_HEADER_BYTES
        if size + s.end - s.start > max_bytes and (run or groups):
            if run:
                groups.append((client, run_clock, run))
            yield _encode(update, groups, _EMPTY_DELETE_SET)
            groups, run, size = [], [], 1 + _GROUP_HEADER_BYTES
            run_clock = s.clock
        run.append((s.start, s.end))
        size += s.end - s.start
    if run:
        groups.append((client, run_clock, run))
    deletes = update[structs.end :] or _EMPTY_DELETE_SET
    if deletes == _EMPTY_DELETE_SET:
        if groups:
            yield _encode(update, groups, deletes)
    elif groups and size + len(deletes) <= max_bytes:
        yield _encode(update, groups, deletes)  # the delete set rides on the last slice
    else:
        if groups:
            yield _encode(update, groups, _EMPTY_DELETE_SET)
        yield b"\x00" + deletes


def _encode(
    data: bytes, groups: list[tuple[int, int, list[tuple[int, int]]]], deletes: bytes
) -> bytes:
    parts = [write_var_uint(len(groups))]
    for client, clock, structs in groups:
        parts.append(write_var_uint(len(structs)))
        parts.append(write_var_uint(client))
        parts.append(write_var_uint(clock))
        # Consecutive structs are contiguous in the original: one copy for the run.
        parts.append(data[structs[0][0] : structs[-1][1]])
    parts.append(deletes)
    return b"".join(parts)
