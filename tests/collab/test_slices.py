"""A large update cut into slices: each a valid update, together the same document."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pycrdt import Array, Doc, Map, Text

from collab.errors import InvalidUpdate
from collab.slices import slice_update
from collab.updates import parse

from .test_properties import apply_op, ops


def board(strokes: int, *, seed: int = 1, client_id: int | None = None) -> Doc[Any]:
    """A board like the web client's: ``shapes`` of maps, each with an int array of points."""
    rnd = random.Random(seed)
    doc: Doc[Any] = Doc(client_id=client_id) if client_id is not None else Doc()
    shapes = doc.get("shapes", type=Map)
    for start in range(0, strokes, 100):
        with doc.transaction():
            for i in range(start, min(strokes, start + 100)):
                points = [0, 0]
                for _ in range(29):
                    points += [rnd.randint(2, 5), rnd.randint(-4, 4)]
                shapes[f"s{i}"] = Map(
                    {"t": "p", "pg": "p0", "z": f"a{i}", "w": 4, "x": i, "pts": Array(points)}
                )
    return doc


def content(doc: Doc[Any]) -> dict[str, Any]:
    return {
        "shapes": doc.get("shapes", type=Map).to_py(),
        "m": doc.get("m", type=Map).to_py(),
        "a": doc.get("a", type=Array).to_py(),
        "t": str(doc.get("t", type=Text)),
    }


def rebuilt(slices: list[bytes]) -> Doc[Any]:
    doc: Doc[Any] = Doc()
    for piece in slices:
        doc.apply_update(piece)
    return doc


def test_small_update_is_its_own_slice() -> None:
    update = board(3).get_update()
    assert slice_update(update, len(update)) == [update]


def test_board_slices_are_bounded_and_rebuild_the_document() -> None:
    doc = board(600)
    update = doc.get_update()
    slices = slice_update(update, 8 * 1024)
    assert len(slices) >= len(update) // (8 * 1024)
    assert all(len(piece) <= 8 * 1024 for piece in slices)
    for piece in slices:
        parse(piece)  # each one is a valid update on its own
    assert content(rebuilt(slices)) == content(doc)
    assert rebuilt(slices).get_state() == doc.get_state()


def test_first_slices_already_show_strokes() -> None:
    """Progressive paint: a client that has applied only the first slice holds strokes."""
    slices = slice_update(board(600).get_update(), 8 * 1024)
    first: Doc[Any] = Doc()
    first.apply_update(slices[0])
    shown = first.get("shapes", type=Map).to_py()
    assert 0 < len(shown) < 600
    # Structs are in clock order: only the stroke at the cut can be partial (the renderer
    # draws strokes that grow while they are written anyway).
    complete = [s for s in shown.values() if len(s.get("pts", ())) == 60]
    assert len(complete) >= len(shown) - 1


def test_deletes_arrive_with_the_last_slice() -> None:
    doc = board(300)
    shapes = doc.get("shapes", type=Map)
    for i in range(0, 300, 3):
        del shapes[f"s{i}"]
    slices = slice_update(doc.get_update(), 4 * 1024)
    assert all(not parse(piece).deletes for piece in slices[:-1])
    assert parse(slices[-1]).deletes
    assert len(rebuilt(slices).get("shapes", type=Map)) == 200


def test_bad_input_is_refused() -> None:
    whole = board(50).get_update()
    with pytest.raises(InvalidUpdate):
        slice_update(whole[: len(whole) // 2], 64)
    with pytest.raises(InvalidUpdate, match="unknown content type"):
        slice_update(b"\x01\x01\x05\x00\x1f" + bytes(100), 16)
    with pytest.raises(ValueError, match="max_bytes must be positive"):
        slice_update(b"\x00\x00", 0)


def test_values_of_every_kind_are_skimmed_whole() -> None:
    doc: Doc[Any] = Doc()
    m = doc.get("m", type=Map)
    for i in range(40):
        m[f"k{i}"] = {"s": "é" * i, "f": 1.5 * i, "n": None, "b": True, "l": [i, "x", {"d": [1]}]}
    doc.get("t", type=Text).insert(0, "héllo wörld 🎉" * 20)
    update = doc.get_update()
    slices = slice_update(update, 128)
    assert len(slices) > 5
    assert content(rebuilt(slices)) == content(doc)
    assert rebuilt(slices).get("m", type=Map).to_py() == m.to_py()


@given(ops, st.integers(min_value=16, max_value=400))
@settings(max_examples=150, deadline=None)
def test_slices_of_any_history_rebuild_it(
    script: list[tuple[int, str, int, str]], limit: int
) -> None:
    """Three writers with concurrent edits and deletes, merged: slices in order converge."""
    writers: list[Doc[Any]] = [Doc(client_id=i + 1) for i in range(3)]
    for who, kind, n, s in script:
        apply_op(writers[who], kind, n, s)
        # Exchange now and then so later items have origins in other clients' structs.
        if n % 3 == 0:
            merged = writers[who].get_update()
            for other in writers:
                other.apply_update(merged)
    whole: Doc[Any] = Doc()
    for w in writers:
        whole.apply_update(w.get_update())
    update = whole.get_update()
    slices = slice_update(update, limit)
    for piece in slices:
        structs = list(parse(piece).structs())
        assert len(piece) <= limit or len(structs) <= 1
    result = rebuilt(slices)
    assert content(result) == content(whole)
