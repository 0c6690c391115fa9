"""Classroom policy, read from the classroom document itself (``{C}/class``).

The classroom document is the one source of truth for who may do what on the board:
tutors write its ``state`` map (board lock, follow-me); students may raise or lower their
own hand and append their own chat messages. Nothing here keeps a copy of that state:
each decision reads the live document, so it can never disagree with what clients see.

Document layout: root ``Y.Map state`` (``boardLocked``, ``followMe``, and
``role:USER``: a role override, below), root
``Y.Map hands`` (user id -> ``{t: timestamp, n: name}``), root ``Y.Array chat`` of
``{id, userId, name, text, ts}``. The board is ``{C}/board`` with roots ``shapes`` and ``pages``.

A role override lowers what a user's token grants in this classroom, for as long as it
stays in ``state`` (``role:USER`` = ``"student"`` or ``"observer"``; deleting the key
restores the token's role). Only staff write ``state``, so nobody lifts their own. Writes
and presence stamps read it from :class:`ClassroomHooks`' per-document dict, which an
observer of the live ``state`` map updates inside the transaction that changes it (never
behind the document): a downgrade takes effect on the user's next write on every node
holding the classroom, and survives a reconnect with the same token.

A student's write is judged by what it *is* (:mod:`collab.updates`), before it is
applied, at a cost that depends on the update and never on the document:

* refused as a whole when it would leave pending structs or pending deletes in the
  document (a gap in a client's clock, an origin or parent that does not exist, a delete
  range beyond what exists) or writes under a client id another user owns;
* otherwise every new item the student may not write is replaced by a ``GC`` range
  (the student's clock stays contiguous, nothing appears anywhere, nothing is counted),
  and deletes the student may not make are dropped. The student alone is sent the
  deletion of its refused items, so its own view drops them as well.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from pycrdt import Doc, Map

from collab.index import DocumentIndex, Place
from collab.ports import DocumentName, Judgement, Peer, Refused, Sanitized, Verdict
from collab.room import Room
from collab.updates import ANY, DELETED, GC, ID, SKIP, Struct, Update, deletion, parse, rewrite

from .auth import Role

log = logging.getLogger("inkroom.server.classroom")

CLASS_SUFFIX = "/class"
BOARD_SUFFIX = "/board"
STAFF = {Role.TUTOR.value, Role.ADMIN.value}
BOARD_ROOTS = frozenset({"shapes", "pages"})
CLASS_ROOTS = frozenset({"state", "hands", "chat"})
MAX_CHAT_TEXT = 2000
MAX_CHAT_FIELD = 200


def class_document(board: str) -> DocumentName | None:
    """``C/class`` for a board ``C/board``; ``None`` for other documents."""
    if board.endswith(BOARD_SUFFIX):
        return DocumentName(board.removesuffix(BOARD_SUFFIX) + CLASS_SUFFIX)
    return None


def classroom_documents(classroom: str) -> frozenset[str]:
    """The documents a classroom has for students and observers: they can open these and
    no others, so they can never bring a new document into existence."""
    return frozenset({classroom + BOARD_SUFFIX, classroom + CLASS_SUFFIX})


ROLE_KEY = "role:"
# Lowest first: an override only ever lowers a role.
_RANK = {Role.OBSERVER.value: 0, Role.STUDENT.value: 1, Role.TUTOR.value: 2}
OVERRIDES = (Role.STUDENT.value, Role.OBSERVER.value)


def class_of(document: str) -> DocumentName:
    """``C/class`` for any document of classroom ``C`` (``C``, ``C/board``, ``C/notes``)."""
    return DocumentName(document.split("/", 1)[0] + CLASS_SUFFIX)


def role_override(class_doc: Doc[Any], user_id: str) -> str | None:
    value = class_doc.get("state", type=Map).get(ROLE_KEY + user_id)
    return value if value in OVERRIDES else None


def role_overrides(class_doc: Doc[Any]) -> dict[str, str]:
    """``{user: role}`` for every override in the classroom."""
    state = class_doc.get("state", type=Map)
    return {
        key[len(ROLE_KEY) :]: value
        for key, value in state.items()
        if key.startswith(ROLE_KEY) and value in OVERRIDES
    }


def lower(peer: Peer, role: str | None) -> Peer:
    """``peer`` with the override ``role`` applied, when it lowers the role. Admins are not
    classroom members: no override applies to them."""
    if role is None or peer.role not in _RANK or _RANK[role] >= _RANK[peer.role]:
        return peer
    return replace(peer, role=role, read_only=peer.read_only or role == Role.OBSERVER.value)


def effective_peer(peer: Peer, class_doc: Doc[Any] | None) -> Peer:
    """``peer`` as the classroom document ``class_doc`` says it is now."""
    if class_doc is None:
        return peer
    return lower(peer, role_override(class_doc, peer.user_id))


def board_locked(class_doc: Doc[Any]) -> bool:
    state = class_doc.get("state", type=Map)
    return state.get("boardLocked") is True


def display_name(peer: Peer) -> str:
    """The name the server shows for a peer (the web client uses the same rule)."""
    return peer.name or peer.user_id


class _Structure:
    """The structural checks every non-staff write must pass, and what it adds."""

    def __init__(self, update: Update, index: DocumentIndex, user: str) -> None:
        self.update = update
        self.index = index
        self.new: list[Struct] = []
        self.known: dict[int, int] = {}
        self.refusal: str | None = self._check(user)

    def _check(self, user: str) -> str | None:
        sv = self.index.sv
        for client, _, group in self.update.groups:
            have = sv.get(client, 0)
            end = have
            for s in group:
                if s.ref == SKIP:
                    continue
                if s.clock > end:
                    return "pending-structs"
                s_end = s.clock + s.length
                if s_end > have:
                    self.new.append(s)
                end = max(end, s_end)
            if end > have:
                owner = self.index.owners.get(client)
                if owner is not None and owner != user:
                    return "foreign-client-id"
                self.known[client] = end
        for s in self.new:
            for dep in (s.origin, s.right_origin, s.parent_item):
                if dep is not None and not self.exists(dep):
                    return "pending-structs"
        for client, ranges in self.update.deletes.items():
            limit = self.known.get(client, sv.get(client, 0))
            for clock, length in ranges:
                if clock + length > limit:
                    return "pending-deletes"
        return None

    def exists(self, item: ID) -> bool:
        client, clock = item
        return clock < self.known.get(client, self.index.sv.get(client, 0))


def _retract(gc: list[Struct]) -> bytes | None:
    """The deletion the sender is sent for its refused items."""
    if not gc:
        return None
    ranges: dict[int, list[tuple[int, int]]] = {}
    for s in gc:
        if s.ref != GC:
            ranges.setdefault(s.client, []).append((s.clock, s.length))
    return deletion(ranges) if ranges else None


def _verdict(
    check: _Structure,
    gc: list[Struct],
    deletes: dict[int, list[tuple[int, int]]],
    tombstones: frozenset[ID] = frozenset(),
) -> Judgement:
    """``gc`` are refused items; those whose key is in ``tombstones`` stay in place as
    deleted items (array elements that later inserts may use as their origin: a ``GC``
    there would make the sender's next message vanish too); the rest become ``GC``."""
    update = check.update
    if not gc and deletes == update.deletes:
        return Verdict.ALLOW
    keys = {(s.client, s.clock) for s in gc}
    cleaned = rewrite(update, keys - tombstones, deletes, keys & tombstones)
    retract = _retract(gc)
    return Sanitized(cleaned, retract, "forbidden items" if gc else "forbidden deletes")


def judge_board(update: Update, index: DocumentIndex, user: str, locked: bool) -> Judgement:
    """A student's write to a board: nothing while it is locked; only the board's roots."""
    check = _Structure(update, index, user)
    if check.refusal is not None:
        return Refused(check.refusal)
    if locked:
        gc = [s for s in check.new if s.ref != GC]
        return _verdict(check, gc, {})
    gc = [s for s in check.new if s.parent_root is not None and s.parent_root not in BOARD_ROOTS]
    return _verdict(check, gc, update.deletes)


def _chat_message_ok(value: Any, user: str, name: str) -> bool:
    if not isinstance(value, dict) or value.get("userId") != user:
        return False
    if value.get("name", name) != name:
        return False
    text = value.get("text", "")
    if not isinstance(text, str) or len(text) > MAX_CHAT_TEXT:
        return False
    return all(
        isinstance(v, str | int | float | bool)
        and (not isinstance(v, str) or len(v) <= MAX_CHAT_FIELD)
        for k, v in value.items()
        if k != "text"
    )


def _hand_ok(values: list[Any] | None, name: str) -> bool:
    """A raised hand: ``{t: timestamp, n: the raiser's own name}`` (or a bare timestamp
    from older clients, or null)."""
    if values is None or len(values) != 1:
        return False
    v = values[0]
    if v is None or _finite(v):
        return True
    return (
        isinstance(v, dict)
        and set(v) <= {"t", "n"}
        and _finite(v.get("t"))
        and v.get("n", name) == name
    )


def _finite(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _class_item_ok(s: Struct, place: Place | None, user: str, name: str) -> bool:
    if s.ref == GC:
        return True
    if place is None:
        return False
    root, key, depth = place
    if depth != 1:
        return False
    if root == "hands":
        return key == user and (s.ref == DELETED or (s.ref == ANY and _hand_ok(s.values, name)))
    if root == "chat":
        return key is None and (
            s.ref == DELETED
            or (s.ref == ANY and all(_chat_message_ok(v, user, name) for v in s.values or []))
        )
    return False


def _own_hand_ranges(
    index: DocumentIndex,
    client: int,
    clock: int,
    end: int,
    local: dict[ID, Place | None],
    new: list[Struct],
    user: str,
) -> Iterator[tuple[int, int]]:
    """The parts of a delete range that hit the user's own hand (their earlier values)."""
    mine: Place = ("hands", user, 1)
    for start, stop, place in index.spans(client, clock, end):
        if place == mine:
            yield start, stop - start
    for s in new:
        overlaps = s.client == client and s.clock < end and s.clock + s.length > clock
        if overlaps and local.get((s.client, s.clock)) == mine:
            lo, hi = max(clock, s.clock), min(end, s.clock + s.length)
            yield lo, hi - lo


def judge_class(update: Update, index: DocumentIndex, peer: Peer) -> Judgement:
    """A student's write to the classroom document: their own hand, their own messages."""
    user, name = peer.user_id, display_name(peer)
    check = _Structure(update, index, user)
    if check.refusal is not None:
        return Refused(check.refusal)
    places = index.resolve(update)
    gc = [
        s for s in check.new if not _class_item_ok(s, places.get((s.client, s.clock)), user, name)
    ]
    # A refused chat line stays a deleted array element: the sender's next line is
    # inserted after it.
    tombstones = frozenset(
        (s.client, s.clock)
        for s in gc
        if places.get((s.client, s.clock)) in _ARRAY_ROOTS and s.parent_sub is None
    )
    deletes: dict[int, list[tuple[int, int]]] = {}
    for client, ranges in update.deletes.items():
        kept = [
            part
            for clock, length in ranges
            for part in _own_hand_ranges(
                index, client, clock, clock + length, places, check.new, user
            )
        ]
        if kept:
            deletes[client] = kept
    return _verdict(check, gc, deletes, tombstones)


_ARRAY_ROOTS = frozenset({("chat", None, 1)})


def judge_nothing(update: Update, index: DocumentIndex, user: str) -> Judgement:
    """A write by someone whose override takes writing away (here): every new item becomes
    a ``GC`` range and every delete is dropped. Not rejected whole, as a read-only token's
    write is: the sender's clock stays contiguous and its view drops what it wrote, so its
    writes integrate again, on the same connection, once the override is removed."""
    check = _Structure(update, index, user)
    if check.refusal is not None:
        return Refused(check.refusal)
    return _verdict(check, [s for s in check.new if s.ref != GC], {})


def judge_other(update: Update, index: DocumentIndex, user: str) -> Judgement:
    check = _Structure(update, index, user)
    return Refused(check.refusal) if check.refusal is not None else Verdict.ALLOW


class ClassroomHooks:
    """:class:`collab.ports.Hooks` for classrooms.

    Needs the registry to read a board's classroom document; the WebSocket route keeps
    ``C/class`` loaded while a student is connected to ``C/board`` (``Registry.hold``).
    """

    def __init__(self) -> None:
        self._rooms: dict[DocumentName, Room] = {}
        # Each loaded classroom document's role overrides, kept by an observer of its
        # ``state`` map: updated inside the transaction that changes them, so never
        # behind the document, and a write's judge reads a dict instead of the document.
        self._overrides: dict[DocumentName, dict[str, str]] = {}
        self._watches: dict[DocumentName, Any] = {}

    def effective(self, peer: Peer, document: str) -> Peer:
        """``peer`` as its classroom's document says it is now (a role override)."""
        overrides = self._overrides.get(class_of(document))
        return lower(peer, overrides.get(peer.user_id)) if overrides else peer

    def judge_write(self, peer: Peer, room: Room, update: bytes) -> Judgement:
        if peer.read_only:
            return Verdict.REJECT
        token_role = peer.role
        peer = self.effective(peer, room.name)
        if peer.read_only or (
            # Staff downgraded to student: a student writes no document but the board and
            # the classroom's.
            token_role in STAFF
            and peer.role not in STAFF
            and not room.name.endswith((BOARD_SUFFIX, CLASS_SUFFIX))
        ):
            return judge_nothing(parse(update, values=False), room.index, peer.user_id)
        if peer.role in STAFF:
            return Verdict.ALLOW
        if room.name.endswith(CLASS_SUFFIX):
            # Only the classroom policy reads values (chat lines, hands).
            return judge_class(parse(update), room.index, peer)
        parsed = parse(update, values=False)
        class_name = class_document(room.name)
        if class_name is None:
            return judge_other(parsed, room.index, peer.user_id)
        class_room = self._rooms.get(class_name)
        if class_room is None:
            # Fail closed: the route holds the classroom document open for students.
            log.warning("classroom document not loaded", extra={"document": room.name})
        locked = class_room is None or board_locked(class_room.doc)
        return judge_board(parsed, room.index, peer.user_id, locked)

    def detailed_index(self, name: DocumentName) -> bool:
        return name.endswith(CLASS_SUFFIX)

    def stamp_presence(self, peer: Peer, room: Room, state: dict[str, Any]) -> dict[str, Any]:
        peer = self.effective(peer, room.name)
        # The web client's fields: u (user id), n (name), r (role) on the classroom
        # document's roster entry; u on a board cursor. The server writes them.
        if room.name.endswith(CLASS_SUFFIX):
            return {**state, "u": peer.user_id, "n": display_name(peer), "r": peer.role}
        if "u" in state or "n" in state or "r" in state:
            stamped = {**state, "u": peer.user_id}
            stamped.pop("n", None)
            stamped.pop("r", None)
            return stamped
        return state

    def on_room_loaded(self, room: Room) -> None:
        if room.name.endswith(CLASS_SUFFIX):
            self._rooms[room.name] = room
            overrides = self._overrides[room.name] = role_overrides(room.doc)

            def changed(event: Any) -> None:
                for key, change in event.keys.items():
                    if not key.startswith(ROLE_KEY):
                        continue
                    value = change.get("newValue") if change["action"] != "delete" else None
                    if value in OVERRIDES:
                        overrides[key[len(ROLE_KEY) :]] = value
                    else:
                        overrides.pop(key[len(ROLE_KEY) :], None)

            state = room.doc.get("state", type=Map)
            self._watches[room.name] = (state, state.observe(changed))

    def on_room_unloaded(self, room: Room) -> None:
        self._rooms.pop(room.name, None)
        self._overrides.pop(room.name, None)
        watch = self._watches.pop(room.name, None)
        if watch is not None:
            state, subscription = watch
            state.unobserve(subscription)
