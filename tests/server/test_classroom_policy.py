"""Classroom rules come from the classroom document: lock, roles, own hand, own chat."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pycrdt import Array, Doc, Map

from server.auth import Role, issue

from .live import live_server, settings_for
from .wspeer import WsPeer

pytestmark = pytest.mark.anyio
SECRET = "class-secret-" + "0123456789abcdef" * 4


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    with live_server(settings_for(tmp_path, SECRET)) as url:
        yield url


def url(server: str, document: str, role: Role, user: str) -> str:
    token = issue(SECRET, classroom="c1", role=role, user_id=user)
    return f"{server}/ws/{document}?token={token}"


def strokes(doc: Doc[Any]) -> list[Any]:
    return sorted(doc.get("shapes", type=Map).to_py())


def draw(shape_id: str) -> Callable[[Doc[Any]], None]:
    def change(doc: Doc[Any]) -> None:
        doc.get("shapes", type=Map)[shape_id] = {"type": "pen", "points": [1, 2, 3]}

    return change


async def barrier(writer: WsPeer, reader: WsPeer, root: str, key: str) -> None:
    """A write the reader must see: anything the server accepted before it has arrived."""
    await writer.edit(lambda d: d.get(root, type=Map).update({key: True}))
    await reader.until(lambda: key in reader.doc.get(root, type=Map).to_py())


async def test_locked_board_rejects_student_strokes_until_unlocked(server: str) -> None:
    async with (
        WsPeer(url(server, "c1/class", Role.TUTOR, "tutor")) as tutor_class,
        WsPeer(url(server, "c1/board", Role.TUTOR, "tutor")) as tutor_board,
        WsPeer(url(server, "c1/board", Role.STUDENT, "bo")) as student_board,
    ):
        await student_board.edit(draw("before"))
        await tutor_board.until(lambda: strokes(tutor_board.doc) == ["before"])

        await tutor_class.edit(lambda d: d.get("state", type=Map).update({"boardLocked": True}))
        # The lock lands on the server before the stroke: the tutor sees its own write
        # come back only through a barrier, so order them through the class document.
        async with WsPeer(url(server, "c1/class", Role.STUDENT, "bo")) as student_class:
            assert student_class.doc.get("state", type=Map).to_py() == {"boardLocked": True}
            await student_board.edit(draw("locked"))
            # Reverted, not dropped: it disappears from the student's own board too.
            await student_board.until(lambda: strokes(student_board.doc) == ["before"])
            await barrier(tutor_board, student_board, "meta", "after-locked-stroke")
            assert strokes(tutor_board.doc) == ["before"]

            await tutor_class.edit(
                lambda d: d.get("state", type=Map).update({"boardLocked": False})
            )
            await student_class.until(
                lambda: student_class.doc.get("state", type=Map).get("boardLocked") is False
            )
        await student_board.edit(draw("unlocked"))
        await tutor_board.until(lambda: strokes(tutor_board.doc) == ["before", "unlocked"])
    async with WsPeer(url(server, "c1/board", Role.TUTOR, "late")) as late:
        assert "locked" not in strokes(late.doc)
        assert "before" in strokes(late.doc)


async def test_students_cannot_write_classroom_state_or_others_hands(server: str) -> None:
    async with (
        WsPeer(url(server, "c1/class", Role.TUTOR, "tutor")) as tutor,
        WsPeer(url(server, "c1/class", Role.STUDENT, "bo")) as bo,
    ):
        await tutor.edit(lambda d: d.get("hands", type=Map).update({"cy": 1.0}))
        await bo.until(lambda: "cy" in bo.doc.get("hands", type=Map).to_py())

        # Refused: unlocking the board, lowering someone else's hand, forging a chat line.
        await bo.edit(lambda d: d.get("state", type=Map).update({"boardLocked": False}))
        await bo.edit(lambda d: d.get("hands", type=Map).pop("cy"))
        await bo.edit(
            lambda d: d.get("chat", type=Array).append({"id": "1", "userId": "tutor", "text": "x"})
        )
        # Retracted for the sender too, and what it writes next still integrates. (The
        # delete of cy's hand is dropped by the server; bo's own copy keeps its local
        # deletion, which Yjs cannot undo, until it reloads: no honest client sends it.)
        await bo.until(lambda: bo.doc.get("state", type=Map).to_py() == {})
        # Accepted: raising its own hand and an honest chat line.
        await bo.edit(lambda d: d.get("hands", type=Map).update({"bo": 2.0}))
        await bo.edit(
            lambda d: d.get("chat", type=Array).append({"id": "2", "userId": "bo", "text": "hi"})
        )
        await tutor.until(lambda: len(tutor.doc.get("chat", type=Array)) == 1, deadline=5)
        await tutor.until(lambda: "bo" in tutor.doc.get("hands", type=Map).to_py())
        assert tutor.doc.get("state", type=Map).to_py() == {}
        assert tutor.doc.get("hands", type=Map).to_py() == {"cy": 1.0, "bo": 2.0}
        assert tutor.doc.get("chat", type=Array).to_py() == [
            {"id": "2", "userId": "bo", "text": "hi"}
        ]
    # The server's copy agrees: a fresh client sees the same, except that bo's hand was
    # lowered by the server when bo left (server/connections.py); "cy" never connected.
    async with WsPeer(url(server, "c1/class", Role.OBSERVER, "obs")) as fresh:
        await asyncio.sleep(0)
        assert fresh.doc.get("hands", type=Map).to_py() == {"cy": 1.0}
        assert fresh.doc.get("state", type=Map).to_py() == {}


async def test_a_role_override_is_a_tutors_document_write_that_lasts_until_removed(
    server: str,
) -> None:
    async with (
        WsPeer(url(server, "c1/class", Role.TUTOR, "tutor")) as tutor_class,
        WsPeer(url(server, "c1/board", Role.TUTOR, "tutor")) as tutor_board,
    ):
        # The tutor's own client writes the override: a classroom-state write like the lock.
        await tutor_class.edit(lambda d: d.get("state", type=Map).update({"role:bo": "observer"}))
        async with WsPeer(url(server, "c1/board", Role.STUDENT, "bo")) as bo:
            await bo.edit(draw("while-observer"))
            await barrier(tutor_board, bo, "meta", "after-observer-stroke")
            assert strokes(tutor_board.doc) == []
        # bo cannot lift it: a student writes no classroom state.
        async with WsPeer(url(server, "c1/class", Role.STUDENT, "bo")) as bo_class:
            await bo_class.edit(lambda d: d.get("state", type=Map).pop("role:bo"))
        async with WsPeer(url(server, "c1/board", Role.STUDENT, "bo")) as bo:
            await bo.edit(draw("still-observer"))
            await barrier(tutor_board, bo, "meta", "after-second-stroke")
            assert strokes(tutor_board.doc) == []
            # Removed by the tutor: bo's next stroke, on the same connection, is taken.
            await tutor_class.edit(lambda d: d.get("state", type=Map).pop("role:bo"))
            await barrier(tutor_class, tutor_class, "meta", "removed")
            await bo.edit(draw("student-again"))
            await tutor_board.until(lambda: strokes(tutor_board.doc) == ["student-again"])


async def test_student_strokes_with_packed_points_reach_the_board(server: str) -> None:
    """The web client appends a stroke's points as packed chunks (binary Yjs content);
    the board's policy judges structure and roots, so a student's packed stroke and its
    later batches are accepted and reach the tutor byte for byte."""
    first, more = bytes([0, 0, 6, 7, 8, 3]), bytes([4, 1])

    def packed(doc: Doc[Any]) -> None:
        doc.get("shapes", type=Map)["s1"] = Map({"t": "p", "x": 10, "y": 20, "pts": Array([first])})

    def batch(doc: Doc[Any]) -> None:
        shape = doc.get("shapes", type=Map)["s1"]
        shape["pts"].append(more)
        shape["done"] = True

    def points(doc: Doc[Any]) -> list[bytes]:
        shape = doc.get("shapes", type=Map).get("s1")
        return [bytes(b) for b in shape["pts"]] if shape is not None and shape.get("done") else []

    async with (
        WsPeer(url(server, "c1/board", Role.TUTOR, "tutor")) as tutor_board,
        WsPeer(url(server, "c1/board", Role.STUDENT, "bo")) as student_board,
    ):
        await student_board.edit(packed)
        await student_board.edit(batch)
        await tutor_board.until(lambda: points(tutor_board.doc) == [first, more])
