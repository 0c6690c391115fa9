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

import itertools
import struct
import zlib
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

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
    groups: dict[str | None, tuple[list[HistoryEntry], list[int]]] = {}
    closed: list[list[HistoryEntry]] = []
    for entry in entries:
        group = groups.get(entry.author)
        if group is not None and not _fits(group[0], group[1][0], entry):
            closed.append(group[0])
            group = None
        if group is None:
            group = groups[entry.author] = ([], [0])
        group[0].append(entry)
        group[1][0] += len(entry.data)
    closed.extend(g for g, _ in groups.values())
    rows: list[HistoryEntry] = []
    for members in closed:
        rows.extend(_rows(members))
    rows.sort(key=lambda r: r.seq)
    return rows


def _fits(group: list[HistoryEntry], size: int, entry: HistoryEntry) -> bool:
    first, last = group[0], group[-1]
    return (
        entry.seq - first.seq < SEQ_SPAN
        and last.created_at <= entry.created_at
        and entry.created_at - first.created_at <= TIME_SPAN
        and size + len(entry.data) <= MAX_BUNDLE_BYTES
    )


def _rows(group: list[HistoryEntry]) -> list[HistoryEntry]:
    plain = sum(len(e.data) for e in group)
    if len(group) > 1 and plain >= MIN_BUNDLE_BYTES:
        packed = BUNDLE + zlib.compress(_encode(group), _LEVEL)
        if len(packed) < plain:
            first, last = group[0], group[-1]
            return [HistoryEntry(last.seq, first.author, first.created_at, packed)]
    return list(group)


# Entries, and the first entry's distance below the row's seq; then three columns (seq
# gaps, microseconds since the previous entry, lengths) and the entries' bytes. Fixed-width
# columns read at C speed (a load unpacks tens of thousands of entries), and compress as
# well as varints did. The spans bound every gap: SEQ_SPAN < 2^16, TIME_SPAN < 2^32 us.
_HEAD = struct.Struct("<II")


def _encode(group: list[HistoryEntry]) -> bytes:
    n = len(group)
    gaps = [0] + [b.seq - a.seq for a, b in itertools.pairwise(group)]
    micros = [0] + [_micros(b.created_at - a.created_at) for a, b in itertools.pairwise(group)]
    return b"".join(
        [
            _HEAD.pack(n, group[-1].seq - group[0].seq),
            struct.pack(f"<{n}H", *gaps),
            struct.pack(f"<{n}I", *micros),
            struct.pack(f"<{n}I", *(len(e.data) for e in group)),
            *(e.data for e in group),
        ]
    )


def _decode(seq: int, stored: bytes) -> tuple[list[int], tuple[int, ...], list[bytes]]:
    """A bundle's seqs, microsecond gaps and entries' bytes (``seq``: its row's)."""
    try:
        data = zlib.decompress(stored[len(BUNDLE) :])
        n, span = _HEAD.unpack_from(data, 0)
        pos = _HEAD.size
        gaps = struct.unpack_from(f"<{n}H", data, pos)
        micros = struct.unpack_from(f"<{n}I", data, pos + 2 * n)
        lengths = struct.unpack_from(f"<{n}I", data, pos + 6 * n)
    except (zlib.error, struct.error) as exc:
        raise ValueError(f"corrupt log bundle at seq {seq}: {exc}") from exc
    seqs = list(itertools.accumulate(gaps, initial=seq - span))[1:]
    ends = list(itertools.accumulate(lengths, initial=pos + 10 * n))
    if not n or ends[-1] != len(data) or seqs[-1] != seq:
        raise ValueError(f"corrupt log bundle at seq {seq}")
    return seqs, micros, [data[a:b] for a, b in itertools.pairwise(ends)]


def sizes(row: HistoryEntry) -> list[tuple[int, datetime, int]]:
    """``(seq, time, size)`` of each entry a row holds, read from a bundle's columns
    without inflating its entries (contributions, and finding the last entry by a time).

    Raises:
        ValueError: a bundle is corrupt or truncated.
    """
    if not row.data.startswith(BUNDLE):
        return [(row.seq, row.created_at, len(row.data))]
    try:
        inflate = zlib.decompressobj()
        head = inflate.decompress(row.data[len(BUNDLE) :], _HEAD.size)
        n, span = _HEAD.unpack(head)
        columns = inflate.decompress(inflate.unconsumed_tail, 10 * n)
        gaps = struct.unpack_from(f"<{n}H", columns, 0)
        micros = struct.unpack_from(f"<{n}I", columns, 2 * n)
        lengths = struct.unpack_from(f"<{n}I", columns, 6 * n)
    except (zlib.error, struct.error) as exc:
        raise ValueError(f"corrupt log bundle at seq {row.seq}: {exc}") from exc
    seqs = itertools.accumulate(gaps, initial=row.seq - span)
    next(seqs)
    at = row.created_at
    return [
        (seq, at + timedelta(microseconds=m), size)
        for seq, m, size in zip(seqs, itertools.accumulate(micros), lengths, strict=True)
    ]


def unpack(row: HistoryEntry) -> list[HistoryEntry]:
    """The entries a stored row holds, ``seq`` ascending.

    Raises:
        ValueError: a bundle is corrupt or truncated.
    """
    if not row.data.startswith(BUNDLE):
        return [row]
    seqs, micros, datas = _decode(row.seq, row.data)
    at = row.created_at
    return [
        HistoryEntry(seq, row.author, at + timedelta(microseconds=m), data)
        for seq, m, data in zip(seqs, itertools.accumulate(micros), datas, strict=True)
    ]


def unpack_all(rows: Iterable[HistoryEntry]) -> list[HistoryEntry]:
    """Every entry ``rows`` hold, in ``seq`` order (bundles interleave by design)."""
    out = [entry for row in rows for entry in unpack(row)]
    out.sort(key=lambda e: e.seq)
    return out


def updates_of(
    rows: Iterable[tuple[int, str | None, bytes]],
) -> list[tuple[int, str | None, bytes]]:
    """``(seq, author, update)`` of every entry the rows ``(seq, author, data)`` hold, in
    ``seq`` order: what a load needs, without building entries or times.

    Raises:
        ValueError: a bundle is corrupt or truncated.
    """
    out: list[tuple[int, str | None, bytes]] = []
    bundled = False
    for seq, author, data in rows:
        if data.startswith(BUNDLE):
            bundled = True
            seqs, _, datas = _decode(seq, data)
            out.extend((s, author, d) for s, d in zip(seqs, datas, strict=True))
        else:
            out.append((seq, author, data))
    if bundled:  # rows come in seq order: only bundles interleave
        out.sort(key=lambda u: u[0])
    return out


def _micros(delta: timedelta) -> int:
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
