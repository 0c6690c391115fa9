"""Classroom policy, read from the classroom document itself (``{C}/class``).

The classroom document is the one source of truth for who may do what on the board:
tutors write its ``state`` map (board lock, follow-me); students may raise or lower their
own hand and append their own chat messages. Nothing here keeps a copy of that state:
each decision reads the live document, so it can never disagree with what clients see.

Document layout: root ``Y.Map state`` (``boardLocked``, ``followMe``, ...), root
``Y.Map hands`` (user id -> timestamp), root ``Y.Array chat`` of ``{id, userId, name,
text, ts}``. The board is ``{C}/board``.
"""

from __future__ import annotations

import logging
from typing import Any

from pycrdt import Array, ArrayEvent, Doc, Map, MapEvent

from collab.ports import DocumentName, Peer, Revert, Verdict
from collab.room import Room

from .auth import Role

log = logging.getLogger("inkroom.server.classroom")

CLASS_SUFFIX = "/class"
BOARD_SUFFIX = "/board"
STAFF = {Role.TUTOR.value, Role.ADMIN.value}
BOARD_ROOTS: dict[str, type[Map[Any]]] = {"shapes": Map, "pages": Map}
CLASS_ROOTS: dict[str, type[Map[Any] | Array[Any]]] = {"state": Map, "hands": Map, "chat": Array}


def class_document(board: str) -> DocumentName | None:
    """``C/class`` for a board ``C/board``; ``None`` for other documents."""
    if board.endswith(BOARD_SUFFIX):
        return DocumentName(board.removesuffix(BOARD_SUFFIX) + CLASS_SUFFIX)
    return None


def board_locked(class_doc: Doc[Any]) -> bool:
    state = class_doc.get("state", type=Map)
    return state.get("boardLocked") is True


def student_change_allowed(current: Doc[Any], update: bytes, user_id: str) -> bool:
    """Whether a non-staff update to a classroom document touches only what students may.

    Applied to a scratch copy (the classroom document is small), observing what changes:
    nothing in ``state``; in ``hands`` only the sender's own key; in ``chat`` only inserted
    messages signed with the sender's id; no other root.
    """
    scratch: Doc[Any] = Doc()
    scratch.apply_update(current.get_update())
    roots = {
        "state": scratch.get("state", type=Map),
        "hands": scratch.get("hands", type=Map),
        "chat": scratch.get("chat", type=Array),
    }
    before = set(scratch.keys())
    verdict = {"ok": True}

    def deny(_: object) -> None:
        verdict["ok"] = False

    def check_hands(event: MapEvent) -> None:
        keys: dict[str, Any] = getattr(event, "keys", {})  # a slot pycrdt does not type
        if set(keys) - {user_id}:
            verdict["ok"] = False

    def check_chat(event: ArrayEvent) -> None:
        delta: list[dict[str, Any]] = getattr(event, "delta", [])
        for op in delta:
            if "delete" in op:
                verdict["ok"] = False
            for item in op.get("insert", []):
                if not isinstance(item, dict) or item.get("userId") != user_id:
                    verdict["ok"] = False

    # The scratch document is dropped afterwards, and its subscriptions with it.
    roots["state"].observe_deep(deny)
    roots["hands"].observe(check_hands)
    roots["chat"].observe(check_chat)
    try:
        scratch.apply_update(update)
    except ValueError:
        return True  # corrupt: the room rejects it with its own error and close code
    if set(scratch.keys()) - before - set(roots):
        return False
    return verdict["ok"]


class ClassroomHooks:
    """:class:`collab.ports.Hooks` for classrooms.

    Needs the registry to read a board's classroom document; the WebSocket route keeps
    ``C/class`` loaded while a student is connected to ``C/board`` (``Registry.hold``).
    """

    def __init__(self) -> None:
        self._rooms: dict[DocumentName, Room] = {}

    def judge_write(self, peer: Peer, room: Room, update: bytes) -> Verdict | Revert:
        if peer.read_only:
            return Verdict.REJECT
        if peer.role in STAFF:
            return Verdict.ALLOW
        doc = room.doc
        if room.name.endswith(CLASS_SUFFIX):
            if student_change_allowed(doc, update, peer.user_id):
                return Verdict.ALLOW
            return Revert([doc.get(n, type=t) for n, t in CLASS_ROOTS.items()])
        class_name = class_document(room.name)
        if class_name is None:
            return Verdict.ALLOW
        class_room = self._rooms.get(class_name)
        if class_room is not None and not board_locked(class_room.doc):
            return Verdict.ALLOW
        if class_room is None:
            # Fail closed: the route holds the classroom document open for students.
            log.warning("classroom document not loaded", extra={"document": room.name})
        # Reverted rather than dropped: the student's next strokes build on this update
        # (Yjs clocks are per client), and a dropped one would leave them stuck pending.
        return Revert([doc.get(n, type=t) for n, t in BOARD_ROOTS.items()])

    def on_room_loaded(self, room: Room) -> None:
        if room.name.endswith(CLASS_SUFFIX):
            self._rooms[room.name] = room

    def on_room_unloaded(self, room: Room) -> None:
        self._rooms.pop(room.name, None)
