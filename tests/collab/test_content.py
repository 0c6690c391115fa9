"""Documents as plain data, and restoring a past state as a forward change."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pycrdt import Array, Doc, Map, Text

from collab.content import (
    converge,
    forward_change,
    from_data,
    from_update,
    root_kinds,
    shared_paths,
    to_data,
)

Op = tuple[str, str, int]


def _deep(n: int) -> Any:
    value: Any = 1
    for _ in range(n):
        value = [value]
    return value


ops = st.lists(
    st.tuples(
        st.sampled_from(["add", "move", "drop", "ink", "erase", "type", "note"]),
        st.sampled_from(["s1", "s2", "s3", "s4"]),
        st.integers(0, 50),
    ),
    max_size=25,
)


def play(doc: Doc[Any], script: list[Op]) -> None:
    shapes = doc.get("shapes", type=Map)
    for op, key, n in script:
        shape = shapes.get(key)
        if op == "add" or shape is None:
            shapes[key] = Map({"t": "p", "x": n, "pts": Array([n, n + 1])})
        elif op == "move":
            shape["x"] = n
        elif op == "drop":
            del shapes[key]
        elif op == "ink":
            shape["pts"].extend([n, -n])
        elif op == "erase" and len(shape["pts"]) > 1:
            del shape["pts"][0]
        elif op == "type":
            doc.get("title", type=Text).insert(0, str(n))
        elif op == "note":
            doc.get("log", type=Array).append(Map({"n": n}) if n % 2 else n)


@settings(max_examples=60, deadline=None)
@given(before=ops, after=ops)
def test_converge_restores_any_past_state_as_one_forward_update(
    before: list[Op], after: list[Op]
) -> None:
    doc: Doc[Any] = Doc()
    play(doc, before)
    past = from_update(doc.get_update())
    other = from_update(doc.get_update())  # a client that stays connected throughout
    play(doc, after)
    other.apply_update(doc.get_update(other.get_state()))
    updates: list[bytes] = []
    doc.observe(lambda e: updates.append(e.update))
    with doc.transaction():
        converge(doc, past)
    assert visible(doc) == visible(past)
    assert len(updates) <= 1
    # The client gets the restore as an ordinary update on top of what it had.
    for u in updates:
        other.apply_update(u)
    assert visible(other) == visible(doc)


def visible(doc: Doc[Any]) -> dict[str, Any]:
    """Content without empty roots: a root can never be removed from a document, so one
    the past lacked is emptied instead (and merely naming a root creates it locally)."""
    return {k: v for k, v in to_data(doc).items() if v not in ({}, [], "")}


def test_root_kinds_and_plain_data() -> None:
    doc: Doc[Any] = Doc()
    doc.get("m", type=Map)["k"] = Map({"pts": Array([1, 2])})
    doc.get("a", type=Array).append("x")
    doc.get("t", type=Text).insert(0, "hello")
    loaded = from_update(doc.get_update())
    assert root_kinds(loaded) == {"m": "map", "a": "array", "t": "text"}
    assert to_data(loaded) == {"a": ["x"], "m": {"k": {"pts": [1.0, 2.0]}}, "t": "hello"}
    assert to_data(Doc()) == {}


@settings(max_examples=60, deadline=None)
@given(script=ops)
def test_plain_data_with_its_shared_paths_rebuilds_the_same_document(script: list[Op]) -> None:
    doc: Doc[Any] = Doc()
    play(doc, script)
    loaded = from_update(doc.get_update())
    # Through JSON text, as an export file travels.
    data = json.loads(json.dumps({"content": to_data(loaded), "shared": shared_paths(loaded)}))
    rebuilt = from_update(from_data(data["content"], data["shared"]).get_update())
    assert visible(rebuilt) == visible(loaded)
    assert shared_paths(rebuilt) == [p for p in shared_paths(loaded) if p[0] in visible(loaded)]


def test_from_data_builds_shared_types_only_where_marked() -> None:
    content = {"shapes": {"s1": {"t": "p", "pts": [1, 2]}}, "chat": [{"text": "hi"}], "t": "x"}
    doc = from_data(content, [["shapes", "s1"], ["shapes", "s1", "pts"]])
    shape = doc.get("shapes", type=Map)["s1"]
    assert isinstance(shape, Map)
    assert isinstance(shape["pts"], Array)
    assert doc.get("chat", type=Array)[0] == {"text": "hi"}  # plain, as the client wrote it
    assert str(doc.get("t", type=Text)) == "x"


@pytest.mark.parametrize(
    ("content", "shared", "message"),
    [
        ([1], None, "content must be an object of roots"),
        ({"n": 3}, None, "root 'n' must be an object, an array or a string"),
        ({"m": {"k": 1}}, [["m", "x"]], "shared path ['m', 'x'] is not in content"),
        ({"m": {"k": 1}}, [["m", "k"]], "shared path ['m', 'k'] is not an object, array or string"),
        ({"m": {}}, "m", "shared must be a list of paths (lists of keys and indexes)"),
        ({"m": {"k": 2**60}}, None, "integer 1152921504606846976 is beyond the 53 bits"),
        ({"m": {"k": _deep(70)}}, None, "content is nested deeper than 64 levels"),
    ],
)
def test_from_data_refuses_malformed_content_with_the_exact_fault(
    content: Any, shared: Any, message: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        from_data(content, shared)


@settings(max_examples=40, deadline=None)
@given(before=ops, after=ops)
def test_a_forward_change_planned_on_a_copy_restores_the_live_document(
    before: list[Op], after: list[Op]
) -> None:
    doc: Doc[Any] = Doc()
    play(doc, before)
    past = from_update(doc.get_update())
    play(doc, after)
    change = forward_change(doc.get_update(), past)
    if change:
        doc.apply_update(change)
    assert visible(doc) == visible(past)
    assert forward_change(doc.get_update(), past) == b""  # nothing left to change


def test_binary_values_are_json_ready() -> None:
    """A board's packed ink points (Uint8Array chunks in the web client) are bytes to
    pycrdt; the inspector's JSON shows them as byte values."""
    doc: Doc[Any] = Doc()
    doc.get("shapes", type=Map)["s"] = Map({"pts": Array([b"\x02\x04", b"\x01"])})
    data = to_data(from_update(doc.get_update()))
    assert data == {"shapes": {"s": {"pts": [[2, 4], [1]]}}}
    json.dumps(data)
