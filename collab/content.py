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

import json
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


Path = tuple[str | int, ...]
MAX_DEPTH = 64


def shared_paths(doc: Doc[Any]) -> list[list[str | int]]:
    """Where :func:`to_data` flattened a nested shared type into plain data: the path (keys
    and indexes from the root) of every nested ``Map``/``Array``/``Text``, so an import can
    rebuild them (the board's shapes are maps, ink points arrays)."""
    out: list[list[str | int]] = []

    def walk(value: Any, path: Path) -> None:
        if isinstance(value, Map):
            items: Any = sorted(value.items())
        elif isinstance(value, Array):
            items = enumerate(value)
        else:
            return
        for key, child in items:
            if _is_shared(child):
                out.append([*path, key])
                walk(child, (*path, key))

    for name, root in sorted(roots(doc).items()):
        walk(root, (name,))
    return out


def from_data(content: Any, shared: Any = None) -> Doc[Any]:
    """A fresh document built from plain data (the ``content`` of :func:`to_data`): at the
    top, an object is a ``Map``, an array an ``Array``, a string a ``Text``; below, a value
    is a shared type where ``shared`` (as from :func:`shared_paths`) names its path, plain
    JSON elsewhere.

    Raises:
        ValueError: with the exact fault (a root of another kind, a ``shared`` path that is
            not an object or array of ``content``, nesting deeper than ``MAX_DEPTH``).
    """
    if not isinstance(content, dict):
        raise ValueError("content must be an object of roots")  # noqa: TRY004 - bad input
    marked = _marks(content, shared)
    doc: Doc[Any] = Doc()
    with doc.transaction():
        for name, value in content.items():
            if isinstance(value, dict):
                kept = doc.get(name, type=Map)
                for key, child in value.items():
                    kept[key] = _build(child, (name, key), marked)
            elif isinstance(value, list):
                doc.get(name, type=Array).extend(
                    [_build(c, (name, i), marked) for i, c in enumerate(value)]
                )
            elif isinstance(value, str):
                doc.get(name, type=Text).insert(0, value)
            else:
                kind = "an object, an array or a string"
                raise ValueError(f"root {name[:80]!r} must be {kind}")  # noqa: TRY004
    return doc


def _marks(content: dict[str, Any], shared: Any) -> set[Path]:
    if shared is None:
        return set()
    if not isinstance(shared, list) or not all(isinstance(p, list) for p in shared):
        raise ValueError("shared must be a list of paths (lists of keys and indexes)")
    marked: set[Path] = set()
    for raw in shared:
        path: Path = tuple(raw)
        if len(path) < 2 or len(path) > MAX_DEPTH:
            raise ValueError(f"shared path {raw!r:.80} must name a value below a root")
        value: Any = content
        for step in path:
            keyed = isinstance(value, dict) and isinstance(step, str) and step in value
            indexed = (
                isinstance(value, list)
                and isinstance(step, int)
                and not isinstance(step, bool)
                and 0 <= step < len(value)
            )
            if keyed or indexed:
                value = value[step]
            else:
                raise ValueError(f"shared path {raw!r:.80} is not in content")
        if not isinstance(value, dict | list | str):
            raise ValueError(  # noqa: TRY004 - bad input
                f"shared path {raw!r:.80} is not an object, array or string"
            )
        marked.add(path)
    return marked


def _build(value: Any, path: Path, marked: set[Path]) -> Any:
    if len(path) > MAX_DEPTH:
        raise ValueError(f"content is nested deeper than {MAX_DEPTH} levels")
    if path not in marked:
        _check_plain(value, len(path))
        return value
    if isinstance(value, dict):
        return Map({k: _build(v, (*path, k), marked) for k, v in value.items()})
    if isinstance(value, list):
        return Array([_build(v, (*path, i), marked) for i, v in enumerate(value)])
    return Text(value)


def _check_plain(value: Any, depth: int) -> None:
    """Plain JSON only (what ``json.loads`` gives), and not nested without bound."""
    if depth > MAX_DEPTH:
        raise ValueError(f"content is nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, dict):
        for v in value.values():
            _check_plain(v, depth + 1)
    elif isinstance(value, list):
        for v in value:
            _check_plain(v, depth + 1)
    elif isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 1 << 53:
        # Yjs numbers are doubles: a larger integer would come back changed.
        raise ValueError(f"integer {value} is beyond the 53 bits a Yjs number holds")


def from_update(update: bytes) -> Doc[Any]:
    """A fresh document holding ``update``. Raises ``ValueError`` if it is corrupt."""
    doc: Doc[Any] = Doc()
    doc.apply_update(update)
    return doc


def data_kinds(content: dict[str, Any]) -> dict[str, str]:
    """The root kinds :func:`from_data` gives ``content`` (no need to read them back)."""
    return {
        name: "map" if isinstance(v, dict) else "array" if isinstance(v, list) else "text"
        for name, v in content.items()
    }


def converge(doc: Doc[Any], target: Doc[Any], kinds: dict[str, str] | None = None) -> None:
    """Changes ``doc`` in place until its content equals ``target``'s.

    Call it inside ``doc.transaction()`` so the change leaves as one update. Roots the
    target lacks are emptied (a root cannot be removed from a Yjs document). ``kinds``:
    the target's root kinds when the caller knows them (reading them parses the target).
    """
    kinds = dict(kinds) if kinds is not None else root_kinds(target)
    if any(name not in kinds for name in doc.keys()):  # noqa: SIM118 - a view
        for name, kind in root_kinds(doc).items():
            kinds.setdefault(name, kind)
    for name, kind in kinds.items():
        cls = _KINDS[kind]
        _sync(doc.get(name, type=cls), target.get(name, type=cls))


def forward_change(current: bytes, target: Doc[Any], kinds: dict[str, str] | None = None) -> bytes:
    """The update that makes a document holding ``current`` equal ``target`` in content
    (:func:`converge` on a scratch copy); ``b""`` when it already is. Pure: run it in a
    worker thread, with documents made there, and apply the result on the live one.
    Raises ``ValueError`` if ``current`` is corrupt."""
    doc = from_update(current)
    # Observed, not diffed by state vector: a change that only deletes leaves the state
    # vector as it was.
    changes: list[bytes] = []
    subscription = doc.observe(lambda event: changes.append(event.update))
    try:
        with doc.transaction():
            converge(doc, target, kinds)
    finally:
        doc.unobserve(subscription)
    return changes[0] if changes else b""


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
    # Whole arrays as plain data in one call each (their JSON, encoded by yrs): reading
    # element by element costs a transaction per element, and an ink stroke's points are
    # hundreds of numbers. Both sides are encoded alike, so equal content compares equal.
    have = json.loads(str(cur))
    want = json.loads(str(tgt))
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
    for offset, i in enumerate(range(start, len(want) - end)):
        cur.insert(start + offset, _copy(tgt[i]))


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
