"""The anatomy of a Yjs v1 update, read without applying it (sans-IO).

A write is judged by what it *is* before it touches a document: which ``(client, clock)``
ranges it inserts, where each inserted item hangs (its origins, or its parent: a root's
name or another item), its content, and which ranges it deletes. pycrdt only offers
"apply and observe", and an update can change a document without any observer firing
(a delete set naming ranges that do not exist yet stays *pending* in the document and
erases those items when they arrive). This module reads the bytes instead, and can
re-encode an update with some items replaced by ``GC`` structs (they keep the sender's
clock contiguous and have no effect on any type) and with another delete set.

Format: ``structs`` then ``delete set``, as written by Yjs ``writeStructs`` /
``writeDeleteSet`` (UpdateEncoderV1). Every read is bounded; malformed input raises
:class:`~collab.errors.InvalidUpdate` with an exact message.
"""

from __future__ import annotations

import re
import struct as _struct
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final

from pycrdt import write_var_uint

from .errors import InvalidUpdate

ID = tuple[int, int]
"""``(client, clock)`` of one item."""

GC: Final = 0
DELETED: Final = 1
JSON: Final = 2
BINARY: Final = 3
STRING: Final = 4
EMBED: Final = 5
FORMAT: Final = 6
TYPE: Final = 7
ANY: Final = 8
DOC: Final = 9
SKIP: Final = 10
_XML_ELEMENT: Final = 3
_XML_HOOK: Final = 5
_MAX_DEPTH: Final = 64
_MAX_CLOCK: Final = 1 << 53


@dataclass(slots=True)
class Struct:
    """One struct of an update: an item, a ``GC`` range or a ``Skip`` (unknown range)."""

    client: int
    clock: int
    length: int
    ref: int
    origin: ID | None = None
    right_origin: ID | None = None
    parent_root: str | None = None
    parent_item: ID | None = None
    parent_sub: str | None = None
    # Decoded values of ``ContentAny`` (the only content whose values a policy reads).
    values: list[Any] | None = None
    # Where the struct's bytes lie in the update, to copy it unchanged on re-encoding.
    start: int = 0
    content_start: int = 0
    end: int = 0
    # The first struct of its client's group (the group header names its clock).
    first: bool = False

    @property
    def is_item(self) -> bool:
        return self.ref not in (GC, SKIP)

    @property
    def explicit_parent(self) -> bool:
        return self.origin is None and self.right_origin is None


@dataclass(slots=True)
class Update:
    """A parsed update: structs grouped by client (in encoded order), and the delete set."""

    groups: list[tuple[int, int, list[Struct]]]
    deletes: dict[int, list[tuple[int, int]]]
    data: bytes

    def structs(self) -> Iterable[Struct]:
        for _, _, group in self.groups:
            yield from group

    @property
    def empty(self) -> bool:
        return not self.groups and not self.deletes


# One value that is a number, boolean, null or undefined: a varInt (125), a float64 or
# bigint (123, 122), a float32 (124), or a bare tag (127 undefined, 126 null, 121, 120).
_SCALAR: Final = (
    rb"(?:\x7d[\x80-\xff]{0,9}[\x00-\x7f]"
    rb"|[\x7a\x7b][\x00-\xff]{8}|\x7c[\x00-\xff]{4}|[\x78\x79\x7e\x7f])"
)


@lru_cache(maxsize=512)
def _scalar_run(n: int) -> re.Pattern[bytes]:
    """Exactly ``n`` scalar values in a row (a stroke's points)."""
    return re.compile(_SCALAR + b"{%d}" % n)


class _Reader:
    __slots__ = ("buf", "pos")

    def __init__(self, buf: bytes) -> None:
        self.buf = buf
        self.pos = 0

    def u8(self) -> int:
        if self.pos >= len(self.buf):
            raise InvalidUpdate("truncated update")
        b = self.buf[self.pos]
        self.pos += 1
        return b

    def var_uint(self) -> int:
        buf, pos = self.buf, self.pos
        value = 0
        shift = 0
        while True:
            if pos >= len(buf):
                raise InvalidUpdate("truncated update: unterminated varUint")
            b = buf[pos]
            pos += 1
            value |= (b & 0x7F) << shift
            if b < 0x80:
                break
            shift += 7
            if shift > 53:
                raise InvalidUpdate("varUint longer than 53 bits")
        self.pos = pos
        return value

    def var_int(self) -> int:
        b = self.u8()
        value = b & 0x3F
        negative = b & 0x40
        shift = 6
        while b & 0x80:
            b = self.u8()
            value |= (b & 0x7F) << shift
            shift += 7
            if shift > 60:
                raise InvalidUpdate("varInt longer than 53 bits")
        return -value if negative else value

    def raw(self, n: int) -> bytes:
        end = self.pos + n
        if end > len(self.buf):
            raise InvalidUpdate(
                f"truncated update: {n} bytes declared, {len(self.buf) - self.pos} left"
            )
        out = self.buf[self.pos : end]
        self.pos = end
        return out

    def buffer(self) -> bytes:
        return self.raw(self.var_uint())

    def string(self) -> str:
        try:
            return self.buffer().decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidUpdate("string is not valid UTF-8") from exc

    def count(self, minimum_bytes_each: int = 1) -> int:
        """A declared element count, refused when the rest of the buffer cannot hold it."""
        n = self.var_uint()
        if n * minimum_bytes_each > len(self.buf) - self.pos:
            raise InvalidUpdate(f"update declares {n} elements in {len(self.buf) - self.pos} bytes")
        return n

    def any(self, depth: int = 0) -> Any:
        if depth > _MAX_DEPTH:
            raise InvalidUpdate("value nested too deeply")
        tag = self.u8()
        if tag == 119:
            return self.string()
        if tag == 125:
            return self.var_int()
        if tag == 123:
            return _struct.unpack(">d", self.raw(8))[0]
        if tag == 118:
            n = self.count(2)
            obj: dict[str, Any] = {}
            for _ in range(n):
                key = self.string()
                obj[key] = self.any(depth + 1)
            return obj
        if tag == 117:
            return [self.any(depth + 1) for _ in range(self.count())]
        if tag in (126, 127):
            return None
        if tag == 121:
            return False
        if tag == 120:
            return True
        if tag == 124:
            return _struct.unpack(">f", self.raw(4))[0]
        if tag == 122:
            return _struct.unpack(">q", self.raw(8))[0]
        if tag == 116:
            return self.buffer()
        raise InvalidUpdate(f"unknown value tag {tag}")

    def skip_values(self, n: int, depth: int = 0) -> None:
        """Skips ``n`` encoded values without building them.

        Most of a board is runs of numbers (a stroke's points), which one regular
        expression steps over at C speed; anything else takes the general path. Values
        are bounded but not validated (UTF-8, for one): every update is still applied by
        yrs, which refuses what is malformed.
        """
        if n > 1:
            m = _scalar_run(n).match(self.buf, self.pos)
            if m is not None:
                self.pos = m.end()
                return
        for _ in range(n):
            self.skip_any(depth)

    def skip_any(self, depth: int = 0) -> None:
        if depth > _MAX_DEPTH:
            raise InvalidUpdate("value nested too deeply")
        tag = self.u8()
        if tag == 125:
            self.var_int()
        elif tag == 117:
            self.skip_values(self.count(), depth + 1)
        elif tag == 119 or tag == 116:
            self.raw(self.var_uint())
        elif tag == 118:
            for _ in range(self.count(2)):
                self.raw(self.var_uint())
                self.skip_any(depth + 1)
        elif tag == 123 or tag == 122:
            self.raw(8)
        elif tag == 124:
            self.raw(4)
        elif tag not in (126, 127, 121, 120):
            raise InvalidUpdate(f"unknown value tag {tag}")

    def id(self) -> ID:
        return self.var_uint(), self.var_uint()


def _utf16_length(text: str) -> int:
    if text.isascii():
        return len(text)
    return len(text.encode("utf-16-le")) // 2


def _content(r: _Reader, ref: int, s: Struct, values: bool) -> int:
    """Reads an item's content; returns its length in clock units. ``ContentAny`` values
    are decoded into ``s.values`` only with ``values``; otherwise they are skipped."""
    if ref == DELETED:
        return r.var_uint()
    if ref == JSON:
        n = r.count()
        for _ in range(n):
            r.buffer()
        return n
    if ref == BINARY:
        r.buffer()
        return 1
    if ref == STRING:
        return _utf16_length(r.string())
    if ref == EMBED:
        r.buffer()
        return 1
    if ref == FORMAT:
        r.buffer()
        r.buffer()
        return 1
    if ref == TYPE:
        type_ref = r.var_uint()
        if type_ref in (_XML_ELEMENT, _XML_HOOK):
            r.buffer()
        return 1
    if ref == ANY:
        n = r.count()
        if values:
            s.values = [r.any() for _ in range(n)]
        else:
            r.skip_values(n)
        return n
    if ref == DOC:
        r.buffer()
        r.any()
        return 1
    raise InvalidUpdate(f"unknown content type {ref}")


class Structs:
    """The structs of a v1 update, read lazily in order; once exhausted, :attr:`end` is
    where the delete set starts. Bounded like every read here.

    Raises (while iterating):
        InvalidUpdate: truncated, over-long or unknown content.
    """

    def __init__(self, data: bytes, *, values: bool = True) -> None:
        self._r = _Reader(data)
        self._values = values
        self.end = 0

    def __iter__(self) -> Iterator[Struct]:
        r, values = self._r, self._values
        for _ in range(r.count(3)):
            n = r.count()
            client = r.var_uint()
            clock = r.var_uint()
            for i in range(n):
                start = r.pos
                info = r.u8()
                ref = info & 0x1F
                s = Struct(client, clock, 0, ref, start=start, first=i == 0)
                if ref in (GC, SKIP):
                    s.length = r.var_uint()
                else:
                    if info & 0x80:
                        s.origin = r.id()
                    if info & 0x40:
                        s.right_origin = r.id()
                    if not info & 0xC0:
                        if r.var_uint() == 1:
                            s.parent_root = r.string()
                        else:
                            s.parent_item = r.id()
                        if info & 0x20:
                            s.parent_sub = r.string()
                    s.content_start = r.pos
                    s.length = _content(r, ref, s, values)
                if s.length <= 0:
                    raise InvalidUpdate("struct of zero length")
                s.end = r.pos
                clock += s.length
                if clock > _MAX_CLOCK:
                    raise InvalidUpdate("clock beyond 2^53")
                yield s
        self.end = r.pos


def parse(data: bytes, *, values: bool = True) -> Update:
    """Reads a v1 update without applying it. Without ``values``, ``ContentAny`` values
    are skipped rather than decoded (enough for positions, lengths and places).

    Raises:
        InvalidUpdate: truncated, over-long, unknown content, or trailing bytes.
    """
    structs = Structs(data, values=values)
    groups: list[tuple[int, int, list[Struct]]] = []
    for s in structs:
        if s.first:
            groups.append((s.client, s.clock, []))
        groups[-1][2].append(s)
    r = structs._r
    deletes: dict[int, list[tuple[int, int]]] = {}
    for _ in range(r.count(2)):
        client = r.var_uint()
        ranges = deletes.setdefault(client, [])
        for _ in range(r.count(2)):
            clock, length = r.var_uint(), r.var_uint()
            if clock + length > _MAX_CLOCK:
                raise InvalidUpdate("delete range beyond 2^53")
            if length:
                ranges.append((clock, length))
    if r.pos != len(data):
        raise InvalidUpdate(f"{len(data) - r.pos} trailing bytes after update")
    return Update(groups, {c: rs for c, rs in deletes.items() if rs}, data)


def writers(data: bytes) -> set[int]:
    """The client ids whose structs ``data`` carries. A client's own change (nearly every
    logged entry) has one: read from the header alone, where :func:`parse` walks every
    struct (29,000 entries of a lesson's tail took 0.64 s to parse at a room's load).

    Raises:
        InvalidUpdate: malformed input (parsed in full when it has other than one client).
    """
    r = _Reader(data)
    if r.var_uint() == 1 and r.var_uint() > 0:
        return {r.var_uint()}
    return {client for client, _, _ in parse(data, values=False).groups}


def encode_delete_set(deletes: Mapping[int, Iterable[tuple[int, int]]]) -> bytes:
    parts = []
    items = [(c, list(rs)) for c, rs in deletes.items()]
    items = [(c, rs) for c, rs in items if rs]
    parts.append(write_var_uint(len(items)))
    for client, ranges in items:
        parts.append(write_var_uint(client))
        parts.append(write_var_uint(len(ranges)))
        for clock, length in ranges:
            parts.append(write_var_uint(clock))
            parts.append(write_var_uint(length))
    return b"".join(parts)


def deletion(deletes: Mapping[int, Iterable[tuple[int, int]]]) -> bytes:
    """An update that only deletes the given ranges (no structs)."""
    return b"\x00" + encode_delete_set(deletes)


def rewrite(
    update: Update,
    gc: set[ID],
    deletes: Mapping[int, Iterable[tuple[int, int]]],
    tombstones: frozenset[ID] | set[ID] = frozenset(),
) -> bytes:
    """Re-encodes ``update`` with the structs whose ``(client, clock)`` is in ``gc``
    turned into ``GC`` ranges of the same length, those in ``tombstones`` into deleted
    items at the same position (an array keeps them as anchors for later inserts), and
    ``deletes`` as its delete set."""
    data = update.data
    parts = [write_var_uint(len(update.groups))]
    for client, clock, group in update.groups:
        parts.append(write_var_uint(len(group)))
        parts.append(write_var_uint(client))
        parts.append(write_var_uint(clock))
        for s in group:
            key = (s.client, s.clock)
            if key in gc:
                parts.append(b"\x00" + write_var_uint(s.length))
            elif key in tombstones and s.is_item:
                info = (data[s.start] & 0xE0) | DELETED
                parts.append(bytes((info,)) + data[s.start + 1 : s.content_start])
                parts.append(write_var_uint(s.length))
            else:
                parts.append(data[s.start : s.end])
    parts.append(encode_delete_set(deletes))
    return b"".join(parts)


def merge_ranges(ranges: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted, non-overlapping ``(clock, length)`` ranges covering the same clocks."""
    out: list[tuple[int, int]] = []
    for clock, length in sorted(ranges):
        if out and clock <= out[-1][0] + out[-1][1]:
            last_clock, last_len = out[-1]
            out[-1] = (last_clock, max(last_len, clock + length - last_clock))
        else:
            out.append((clock, length))
    return out


def decode_state_vector(data: bytes) -> dict[int, int]:
    """``{client: clock}`` from an encoded state vector.

    Raises:
        InvalidUpdate: malformed input.
    """
    r = _Reader(data)
    out = {}
    for _ in range(r.count(2)):
        client = r.var_uint()
        out[client] = r.var_uint()
    if r.pos != len(data):
        raise InvalidUpdate("trailing bytes after state vector")
    return out
