"""How a store packs log entries into rows: one author's entries of one save in one
deflated row (a *bundle*), so the log costs about half the bytes clients sent instead of
all of them (issue 13, item 6; bench/RESULTS.md). Pure, so it is property-tested.

Nothing is merged or reordered: a bundle holds every entry as it was sent, with its own
sequence number and time, and unpacking gives back exactly the entries that were packed.
A store that reads rows sorts what they unpack to by ``seq``, so the log reads in the order
it was written, history keeps one entry per update, and "the document at T" stays exact.

A row's ``seq`` is its last entry's, its ``created_at`` its first entry's. A bundle's
entries lie within :data:`SEQ_SPAN` sequence numbers and :data:`TIME_SPAN` of each other,
in time order, which bounds how far a query by ``seq`` or time must look around a range.
A row that does not start with :data:`BUNDLE` is one entry as it was always stored, so
logs written before bundles read unchanged.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Sequence
from datetime import timedelta

from .ports import HistoryEntry

# A v1 update starts with the varint count of its clients: these bytes would count 2^41,
# which no update can have (the same reasoning as the snapshots' marker, another last byte).
BUNDLE = b"\xff\xff\xff\xff\xff\x7fB"
SEQ_SPAN = 4096
TIME_SPAN = timedelta(seconds=10)
# Below this many bytes of updates a bundle gains too little (zlib's own overhead, and a
# row per update keeps small documents' logs readable as they are).
MIN_BUNDLE_BYTES = 1024
# Bounds the memory one row takes to unpack.
MAX_BUNDLE_BYTES = 1024 * 1024
_LEVEL = 6


def pack(entries: Sequence[HistoryEntry]) -> list[HistoryEntry]:
    """The rows to store for ``entries`` (one save of one document, ``seq`` ascending):
    each author's entries in bundles where that saves bytes, the others as they are.
    Rows come in ``seq`` order (of their last entry)."""
    groups: dict[str | None, list[HistoryEntry]] = {}
    closed: list[list[HistoryEntry]] = []
    for entry in entries:
        group = groups.get(entry.author)
        if group is not None and not _fits(group, entry):
            closed.append(group)
            group = None
        if group is None:
            group = groups[entry.author] = []
        group.append(entry)
    closed.extend(groups.values())
    rows: list[HistoryEntry] = []
    for group in closed:
        rows.extend(_rows(group))
    rows.sort(key=lambda r: r.seq)
    return rows


def _fits(group: list[HistoryEntry], entry: HistoryEntry) -> bool:
    first, last = group[0], group[-1]
    return (
        entry.seq - first.seq < SEQ_SPAN
        and first.created_at <= last.created_at <= entry.created_at
        and entry.created_at - first.created_at <= TIME_SPAN
        and sum(len(e.data) for e in group) + len(entry.data) <= MAX_BUNDLE_BYTES
    )


def _rows(group: list[HistoryEntry]) -> list[HistoryEntry]:
    plain = sum(len(e.data) for e in group)
    if len(group) > 1 and plain >= MIN_BUNDLE_BYTES:
        packed = BUNDLE + zlib.compress(_encode(group), _LEVEL)
        if len(packed) < plain:
            first, last = group[0], group[-1]
            return [HistoryEntry(last.seq, first.author, first.created_at, packed)]
    return list(group)


def _encode(group: list[HistoryEntry]) -> bytes:
    # Per entry: seq gap (the first's from the row's seq), microseconds since the previous
    # entry, length, bytes. Gaps instead of absolute values: they compress.
    out = bytearray()
    _varint(out, len(group))
    _varint(out, group[-1].seq - group[0].seq)
    prev_seq, prev_at = group[0].seq, group[0].created_at
    for entry in group:
        _varint(out, entry.seq - prev_seq)
        _varint(out, _micros(entry.created_at - prev_at))
        _varint(out, len(entry.data))
        out += entry.data
        prev_seq, prev_at = entry.seq, entry.created_at
    return bytes(out)


def unpack(row: HistoryEntry) -> list[HistoryEntry]:
    """The entries a stored row holds, ``seq`` ascending.

    Raises:
        ValueError: a bundle is corrupt or truncated.
    """
    if not row.data.startswith(BUNDLE):
        return [row]
    try:
        data = zlib.decompress(row.data[len(BUNDLE) :])
        reader = _Reader(data)
        count = reader.varint()
        seq = row.seq - reader.varint()
        at = row.created_at
        out: list[HistoryEntry] = []
        for _ in range(count):
            seq += reader.varint()
            at += timedelta(microseconds=reader.varint())
            out.append(HistoryEntry(seq, row.author, at, reader.take(reader.varint())))
    except (zlib.error, IndexError) as exc:
        raise ValueError(f"corrupt log bundle at seq {row.seq}: {exc}") from exc
    if reader.pos != len(data) or not out or out[-1].seq != row.seq:
        raise ValueError(f"corrupt log bundle at seq {row.seq}")
    return out


def unpack_all(rows: Iterable[HistoryEntry]) -> list[HistoryEntry]:
    """Every entry ``rows`` hold, in ``seq`` order (bundles interleave by design)."""
    out = [entry for row in rows for entry in unpack(row)]
    out.sort(key=lambda e: e.seq)
    return out


def _micros(delta: timedelta) -> int:
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _varint(out: bytearray, n: int) -> None:
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def varint(self) -> int:
        n = shift = 0
        while True:
            b = self.data[self.pos]
            self.pos += 1
            n |= (b & 0x7F) << shift
            if b < 0x80:
                return n
            shift += 7
            if shift > 63:
                raise IndexError("varint too long")

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise IndexError("truncated entry")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out
