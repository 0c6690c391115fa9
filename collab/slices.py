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
update, and reading skims (it decodes no values), since the update comes from the
server's own document, not from a client.
"""

from __future__ import annotations

from collections.abc import Iterator

from pycrdt import write_var_uint

from .errors import InvalidUpdate
from .updates import ANY, BINARY, DELETED, DOC, EMBED, FORMAT, GC, JSON, SKIP, STRING, TYPE

# Per-group header: struct count, client id (up to 8 bytes each as varUints) and clock.
_GROUP_HEADER_BYTES = 24
_XML_ELEMENT = 3
_XML_HOOK = 5
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
    scan = _Scan(update)
    # (client, first clock, [(start, end) of each struct]) per group of the slice
    groups: list[tuple[int, int, list[tuple[int, int]]]] = []
    size = 1
    for _ in range(scan.var_uint()):
        n = scan.var_uint()
        client = scan.var_uint()
        clock = scan.var_uint()
        run: list[tuple[int, int]] = []
        run_clock = clock
        size += _GROUP_HEADER_BYTES
        for _ in range(n):
            start = scan.pos
            length = scan.struct()
            end = scan.pos
            if size + end - start > max_bytes and (run or groups):
                if run:
                    groups.append((client, run_clock, run))
                yield _encode(update, groups, _EMPTY_DELETE_SET)
                groups, run, size = [], [], 1 + _GROUP_HEADER_BYTES
                run_clock = clock
            run.append((start, end))
            size += end - start
            clock += length
        if run:
            groups.append((client, run_clock, run))
    deletes = update[scan.pos :] or _EMPTY_DELETE_SET
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


class _Scan:
    """Finds struct boundaries and clock lengths without decoding any value."""

    __slots__ = ("buf", "pos")

    def __init__(self, buf: bytes) -> None:
        self.buf = buf
        self.pos = 0

    def var_uint(self) -> int:
        buf, pos = self.buf, self.pos
        value = shift = 0
        try:
            while True:
                b = buf[pos]
                pos += 1
                value |= (b & 0x7F) << shift
                if b < 0x80:
                    break
                shift += 7
        except IndexError:
            raise InvalidUpdate("truncated update: unterminated varUint") from None
        self.pos = pos
        return value

    def skip_var(self) -> None:
        buf, pos = self.buf, self.pos
        try:
            while buf[pos] & 0x80:
                pos += 1
        except IndexError:
            raise InvalidUpdate("truncated update: unterminated varInt") from None
        self.pos = pos + 1

    def skip(self, n: int) -> None:
        self.pos += n
        if self.pos > len(self.buf):
            raise InvalidUpdate("truncated update")

    def buffer(self) -> None:
        self.skip(self.var_uint())

    def struct(self) -> int:
        """Skips one struct; returns its length in clock units."""
        if self.pos >= len(self.buf):
            raise InvalidUpdate("truncated update")
        info = self.buf[self.pos]
        self.pos += 1
        ref = info & 0x1F
        if ref in (GC, SKIP):
            return self.var_uint()
        if info & 0x80:
            self.skip_var()
            self.skip_var()
        if info & 0x40:
            self.skip_var()
            self.skip_var()
        if not info & 0xC0:
            if self.var_uint() == 1:
                self.buffer()
            else:
                self.skip_var()
                self.skip_var()
            if info & 0x20:
                self.buffer()
        return self.content(ref)

    def content(self, ref: int) -> int:
        if ref == ANY:
            n = self.var_uint()
            for _ in range(n):
                self.any()
            return n
        if ref == STRING:
            length = self.var_uint()
            text = self.buf[self.pos : self.pos + length]
            self.skip(length)
            if text.isascii():
                return length
            return len(text.decode("utf-8").encode("utf-16-le")) // 2
        if ref == DELETED:
            return self.var_uint()
        if ref == JSON:
            n = self.var_uint()
            for _ in range(n):
                self.buffer()
            return n
        if ref in (BINARY, EMBED):
            self.buffer()
            return 1
        if ref == FORMAT:
            self.buffer()
            self.buffer()
            return 1
        if ref == TYPE:
            if self.var_uint() in (_XML_ELEMENT, _XML_HOOK):
                self.buffer()
            return 1
        if ref == DOC:
            self.buffer()
            self.any()
            return 1
        raise InvalidUpdate(f"unknown content type {ref}")

    def any(self, depth: int = 0) -> None:
        if depth > 64:
            raise InvalidUpdate("value nested too deeply")
        if self.pos >= len(self.buf):
            raise InvalidUpdate("truncated update")
        tag = self.buf[self.pos]
        self.pos += 1
        if tag == 125:
            self.skip_var()
        elif tag == 119 or tag == 116:
            self.buffer()
        elif tag == 123 or tag == 122:
            self.skip(8)
        elif tag == 124:
            self.skip(4)
        elif tag == 118:
            for _ in range(self.var_uint()):
                self.buffer()  # key
                self.any(depth + 1)
        elif tag == 117:
            for _ in range(self.var_uint()):
                self.any(depth + 1)
        elif tag not in (120, 121, 126, 127):
            raise InvalidUpdate(f"unknown value tag {tag}")
