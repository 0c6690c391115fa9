"""A document as plain data, and the forward change that makes it equal another.

A loaded document does not know what kind each root is (the encoding names a root, not
its type), so the kind is read from the update: items keyed by ``parent_sub`` hang in a
map, string content is text, anything else is an array. A root with nothing left in it
reads as an empty map.

:func:`converge` restores a past state *forward*: it writes, as ordinary operations on
the live document, whatever turns its content into the target's. Connected clients get it
as one more update; nothing is rewritten, so nobody's history diverges.
"""

from __future__ import annotations

from typing import Any

from pycrdt import Array, Doc, Map, Text

from .errors import InvalidUpdate
from .index import DocumentIndex
from .updates import EMBED, FORMAT, STRING, parse

Shared = Map[Any] | Array[Any] | Text
_KINDS: dict[str, type[Shared]] = {"map": Map, "array": Array, "text": Text}


def root_kinds(doc: Doc[Any]) -> dict[str, str]:
    """``{root name: "map" | "array" | "text"}`` for every root the document has.

    Only an item inserted with nothing beside it names its parent; the others name their
    neighbours (origins), so an item's root is found by following them.
    """
    kinds: dict[str, str] = {name: "map" for name in doc.keys()}  # noqa: SIM118 - a view
    try:
        update = parse(doc.get_update(), values=False)
    except InvalidUpdate:  # yrs wrote it; fall back to maps rather than fail a read
        return kinds
    # The index follows origins to each item's place, as the write policy does.
    places = DocumentIndex().resolve(update)
    texts: set[str] = set()
    maps: set[str] = set()
    used: set[str] = set()
    for s in update.structs():
        place = places.get((s.client, s.clock))
        if not s.is_item or place is None or place[2] != 1:
            continue
        root, key, _ = place
        used.add(root)
        if key is not None:
            maps.add(root)
        elif s.ref in (STRING, FORMAT, EMBED):
            texts.add(root)
    for root in used:
        kinds[root] = "map" if root in maps else "text" if root in texts else "array"
    return kinds


def roots(doc: Doc[Any]) -> dict[str, Shared]:
    """Every root of ``doc`` as its shared type."""
    return {name: doc.get(name, type=_KINDS[kind]) for name, kind in root_kinds(doc).items()}


def to_data(doc: Doc[Any]) -> dict[str, Any]:
    """The document's content as JSON-ready data: ``{root: dict | list | str}``.

    Binary values (a board's packed ink points) become lists of byte values.
    """
    return {name: _jsonable(root.to_py()) for name, root in sorted(roots(doc).items())}


def _jsonable(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray)):
        return list(value)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


def from_update(update: bytes) -> Doc[Any]:
    """A fresh document holding ``update``. Raises ``ValueError`` if it is corrupt."""
    doc: Doc[Any] = Doc()
    doc.apply_update(update)
    return doc


def converge(doc: Doc[Any], target: Doc[Any]) -> None:
    """Changes ``doc`` in place until its content equals ``target``'s.

    Call it inside ``doc.transaction()`` so the change leaves as one update. Roots the
    target lacks are emptied (a root cannot be removed from a Yjs document).
    """
    kinds = root_kinds(target)
    for name, kind in root_kinds(doc).items():
        kinds.setdefault(name, kind)
    for name, kind in kinds.items():
        cls = _KINDS[kind]
        _sync(doc.get(name, type=cls), target.get(name, type=cls))


def _sync(cur: Shared, tgt: Shared) -> None:
    if isinstance(cur, Map) and isinstance(tgt, Map):
        _sync_map(cur, tgt)
    elif isinstance(cur, Array) and isinstance(tgt, Array):
        _sync_array(cur, tgt)
    elif isinstance(cur, Text) and isinstance(tgt, Text) and str(cur) != str(tgt):
        cur.clear()
        cur.insert(0, str(tgt))


def _sync_map(cur: Map[Any], tgt: Map[Any]) -> None:
    wanted = dict(tgt.items())
    for key in [k for k in cur.keys() if k not in wanted]:  # noqa: SIM118
        del cur[key]
    present = set(cur.keys())
    for key, value in wanted.items():
        if key not in present:
            cur[key] = _copy(value)
            continue
        have = cur[key]
        if _same_kind(have, value):
            _sync(have, value)
        elif _plain(have) != _plain(value) or _is_shared(have) != _is_shared(value):
            cur[key] = _copy(value)


def _sync_array(cur: Array[Any], tgt: Array[Any]) -> None:
    have = [_plain(v) for v in cur]
    want = [_plain(v) for v in tgt]
    if have == want:
        return
    start = 0
    while start < min(len(have), len(want)) and have[start] == want[start]:
        start += 1
    end = 0
    while (
        end < min(len(have), len(want)) - start
        and have[len(have) - 1 - end] == want[len(want) - 1 - end]
    ):
        end += 1
    if len(have) - end > start:
        del cur[start : len(have) - end]
    for offset, value in enumerate(list(tgt)[start : len(want) - end]):
        cur.insert(start + offset, _copy(value))


def _is_shared(value: Any) -> bool:
    return isinstance(value, Map | Array | Text)


def _same_kind(a: Any, b: Any) -> bool:
    return _is_shared(a) and type(a) is type(b)


def _plain(value: Any) -> Any:
    return value.to_py() if _is_shared(value) else value


def _copy(value: Any) -> Any:
    """A preliminary copy of ``value`` (shared types are bound to their document)."""
    if isinstance(value, Map):
        return Map({k: _copy(v) for k, v in value.items()})
    if isinstance(value, Array):
        return Array([_copy(v) for v in value])
    if isinstance(value, Text):
        return Text(str(value))
    return value
