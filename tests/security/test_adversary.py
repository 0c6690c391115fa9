"""A Hypothesis-driven adversarial student against the real rooms and the real policy.

Eve sends random well-formed and malformed updates (random delete sets naming anyone's
client ids and clocks, structs forged under other users' client ids, writes to the
classroom state and to others' hands, forged chat lines, new roots, huge values, mutated
bytes), interleaved with a tutor's and another student's (Ann's) legitimate edits and
with the tutor locking and unlocking the board.

A watcher connected to both documents sees every frame the rooms send to other clients.
After *every* step (so not even transiently) it must hold that nothing outside a
student's rights is visible; at the end every legitimate write is there for a fresh
reader, and the watcher has converged with the server.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pycrdt import Array, Doc, Map, merge_updates

from collab.awareness import Entry as AwarenessEntry
from collab.awareness import encode_entries
from collab.errors import CollabError
from collab.fullstate import FullState, SyncReply
from collab.memory import LocalBus, MemoryStore
from collab.ports import DocumentName, Peer
from collab.protocol import AwarenessMessage, SyncStep2, SyncUpdate, decode
from collab.registry import Registry
from collab.room import Room
from collab.updates import deletion
from server.classroom import ClassroomHooks

TUTOR = Peer("tutor", "Tess", "tutor")
ANN = Peer("ann", "Ann", "student")
EVE = Peer("eve", "Eve", "student")
WATCHER = Peer("watcher", "W", "observer")


class Replica:
    """A client's document fed only by what its room sends it."""

    def __init__(self, room: Room, peer: Peer, client_id: int | None = None) -> None:
        self.room = room
        self.peer = peer
        self.doc: Doc[Any] = Doc() if client_id is None else Doc(client_id=client_id)
        self.client = room.join(peer)
        self.outgoing: list[bytes] = []
        self._remote = False
        self.doc.observe(self._capture)
        # As the stock client does on connecting: its presence, under its client id.
        entry = AwarenessEntry(self.doc.client_id, 1, json.dumps({"u": peer.user_id}))
        self.send(bytes(AwarenessMessage(encode_entries([entry]))))

    def _capture(self, event: Any) -> None:
        if not self._remote:
            self.outgoing.append(event.update)

    def drain(self) -> None:
        queue = self.client._queue
        while queue:
            item = queue.popleft()
            if isinstance(item, SyncReply):  # a large first sync: whole, here
                rest = item.rest()
                shared = [s for s in (item.base, rest) if isinstance(s, FullState)]
                parts = [_update_of(f) for s in shared for f in _frames(s)]
                if isinstance(rest, bytes):
                    parts.append(rest)
                item = bytes(SyncStep2(merge_updates(*parts)))
            message = decode(item)
            if isinstance(message, SyncUpdate | SyncStep2):
                self._remote = True
                try:
                    self.doc.apply_update(message.update)
                finally:
                    self._remote = False

    def edit(self, change: Callable[[Doc[Any]], Any]) -> None:
        with self.doc.transaction():
            change(self.doc)
        outgoing, self.outgoing = self.outgoing, []
        for update in outgoing:
            self.send(bytes(SyncUpdate(update)))

    def send(self, frame: bytes) -> bool:
        """What the server makes of one frame; ``False`` if it closed the connection."""
        try:
            self.room.receive(self.client, frame)
        except CollabError:
            return False
        return True

    def rejoin(self) -> None:
        self.room.leave(self.client)
        self.client = self.room.join(self.peer)


eve_actions = st.one_of(
    st.tuples(st.just("state"), st.text(max_size=5)),
    st.tuples(st.just("others-hand"), st.sampled_from(["ann", "tutor"])),
    st.tuples(st.just("own-hand"), st.floats(allow_nan=False, allow_infinity=False)),
    st.tuples(st.just("forged-chat"), st.sampled_from(["ann", "tutor", "eve-wrong-name"])),
    st.tuples(st.just("chat"), st.text(max_size=20)),
    st.tuples(st.just("junk-root"), st.integers(1, 50)),
    st.tuples(st.just("huge"), st.integers(1, 200_000)),
    st.tuples(
        st.just("delete-set"),
        st.tuples(
            st.sampled_from(["tutor", "ann", "random"]), st.integers(0, 3), st.integers(1, 10**6)
        ),
    ),
    st.tuples(st.just("forge-structs"), st.sampled_from(["tutor", "ann"])),
    st.tuples(st.just("mutate"), st.integers(0, 2**32)),
    st.tuples(st.just("stroke"), st.integers(0, 3)),
    st.tuples(st.just("erase-board"), st.just(0)),
)
legit_actions = st.one_of(
    st.tuples(st.just("tutor-lock"), st.booleans()),
    st.tuples(st.just("tutor-state"), st.text(max_size=5)),
    st.tuples(st.just("tutor-chat"), st.text(max_size=10)),
    st.tuples(st.just("tutor-stroke"), st.integers(0, 3)),
    st.tuples(st.just("ann-hand"), st.floats(0, 1e6)),
    st.tuples(st.just("ann-chat"), st.text(max_size=10)),
    st.tuples(st.just("ann-stroke"), st.integers(0, 3)),
)


class Session:
    def __init__(self, class_room: Room, board_room: Room) -> None:
        self.cls = {p.user_id: Replica(class_room, p) for p in (TUTOR, ANN, EVE, WATCHER)}
        self.board = {p.user_id: Replica(board_room, p) for p in (TUTOR, ANN, EVE, WATCHER)}
        self.class_room = class_room
        self.board_room = board_room
        self.legit_chat: dict[str, str] = {}  # id -> author
        self.legit_shapes: set[str] = set()
        self.erased: set[str] = set()
        self.tutor_state: dict[str, Any] = {}
        self.ann_hand: float | None = None
        self.counter = 0
        for r in (*self.cls.values(), *self.board.values()):
            r.drain()

    def next_id(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}-{self.counter}"

    def locked(self) -> bool:
        return self.class_room.doc.get("state", type=Map).get("boardLocked") is True

    def legit(self, action: tuple[str, Any]) -> None:
        kind, arg = action
        if kind == "tutor-lock":
            self.tutor_state["boardLocked"] = arg
            self.cls["tutor"].edit(lambda d: d.get("state", type=Map).update({"boardLocked": arg}))
        elif kind == "tutor-state":
            self.tutor_state["note"] = arg
            self.cls["tutor"].edit(lambda d: d.get("state", type=Map).update({"note": arg}))
        elif kind in ("tutor-chat", "ann-chat"):
            who = TUTOR if kind == "tutor-chat" else ANN
            mid = self.next_id(who.user_id)
            self.legit_chat[mid] = who.user_id
            line = {"id": mid, "userId": who.user_id, "name": who.name, "text": arg}
            self.cls[who.user_id].edit(lambda d: d.get("chat", type=Array).append(line))
        elif kind == "ann-hand":
            self.ann_hand = arg
            self.cls["ann"].edit(lambda d: d.get("hands", type=Map).update({"ann": arg}))
        elif kind in ("tutor-stroke", "ann-stroke"):
            author = "tutor" if kind == "tutor-stroke" else "ann"
            if author == "ann" and self.locked():
                return  # the web client disables tools on a locked board
            sid = self.next_id(author)
            self.legit_shapes.add(sid)
            self.board[author].edit(
                lambda d: d.get("shapes", type=Map).update({sid: Map({"a": author})})
            )

    def eve(self, action: tuple[str, Any], rnd: random.Random) -> None:
        kind, arg = action
        cls, board = self.cls["eve"], self.board["eve"]
        ok = True
        if kind == "state":
            cls.edit(lambda d: d.get("state", type=Map).update({"boardLocked": False, "x": arg}))
        elif kind == "others-hand":
            cls.edit(lambda d: d.get("hands", type=Map).update({arg: 1.0}))
        elif kind == "own-hand":
            cls.edit(lambda d: d.get("hands", type=Map).update({"eve": arg}))
        elif kind == "forged-chat":
            user, name = ("eve", "Mallory") if arg == "eve-wrong-name" else (arg, "X")
            line = {"id": self.next_id("forged"), "userId": user, "name": name}
            cls.edit(lambda d: d.get("chat", type=Array).append(line))
        elif kind == "chat":
            mid = self.next_id("eve")
            line = {"id": mid, "userId": "eve", "name": "Eve", "text": arg}
            cls.edit(lambda d: d.get("chat", type=Array).append(line))
        elif kind == "junk-root":
            cls.edit(lambda d: d.get("junk", type=Map).update({f"k{i}": i for i in range(arg)}))
        elif kind == "huge":
            cls.edit(
                lambda d: d.get("chat", type=Array).append({"userId": "eve", "text": "z" * arg})
            )
        elif kind == "delete-set":
            # A delete set naming clocks that do not exist yet: with no structs, nothing
            # integrates and no observer fires; kept pending, it would erase the
            # victim's future writes as they arrive.
            target, offset, length = arg
            for mine, room in ((cls, self.class_room), (board, self.board_room)):
                replicas = self.cls if mine is cls else self.board
                named = (
                    replicas[target].doc.client_id if target in replicas else rnd.getrandbits(32)
                )
                clock = max(0, _sv(room.doc).get(named, 0) + offset - 1)
                ok = ok and mine.send(bytes(SyncUpdate(deletion({named: [(clock, length)]}))))
        elif kind == "forge-structs":
            # Under a client id Eve learnt from its owner's presence or updates.
            victim = self.cls[arg].doc
            forger: Doc[Any] = Doc(client_id=victim.client_id)
            forger.apply_update(self.class_room.doc.get_update())
            before = forger.get_state()
            forger.get("state", type=Map)["boardLocked"] = False
            forger.get("chat", type=Array).append({"id": "forged", "userId": arg})
            ok = cls.send(bytes(SyncUpdate(forger.get_update(before))))
        elif kind == "mutate":
            local = random.Random(arg)
            probe: Doc[Any] = Doc(client_id=cls.doc.client_id)
            probe.apply_update(cls.doc.get_update())
            before = probe.get_state()
            probe.get("state", type=Map)["m"] = "x"
            data = bytearray(probe.get_update(before))
            for _ in range(local.randint(1, 3)):
                data[local.randrange(len(data))] = local.randrange(256)
            ok = cls.send(bytes(SyncUpdate(bytes(data))))
        elif kind == "stroke":
            sid = self.next_id("eve")
            if not self.locked():
                self.legit_shapes.add(sid)
            board.edit(lambda d: d.get("shapes", type=Map).update({sid: Map({"a": "eve"})}))
        elif kind == "erase-board":
            if not self.locked():  # within her rights on an unlocked board
                self.erased |= set(board.doc.get("shapes", type=Map).keys())
            board.edit(
                lambda d: [
                    d.get("shapes", type=Map).pop(k) for k in list(d.get("shapes", type=Map).keys())
                ]
            )
        if not ok:
            cls.rejoin()
            board.rejoin()


def _sv(doc: Doc[Any]) -> dict[int, int]:
    from collab.updates import decode_state_vector

    return decode_state_vector(doc.get_state())


def check_watcher(s: Session) -> None:
    """What another client sees never holds anything outside a student's rights."""
    doc = s.cls["watcher"].doc
    assert set(doc.keys()) <= {"state", "hands", "chat"}, set(doc.keys())
    state = doc.get("state", type=Map).to_py() or {}
    assert set(state) <= {"boardLocked", "note"}, state
    for key in ("boardLocked", "note"):
        if key in state:
            assert key in s.tutor_state
    hands = doc.get("hands", type=Map).to_py() or {}
    assert set(hands) <= {"ann", "eve"}, hands
    for line in doc.get("chat", type=Array).to_py() or []:
        if line.get("userId") == "eve":  # her own lines, under her own name
            assert line.get("name", "Eve") == "Eve", line
            assert len(line.get("text", "")) <= 2000
        else:
            assert s.legit_chat.get(line.get("id")) == line.get("userId"), line
    shapes = s.board["watcher"].doc.get("shapes", type=Map).to_py() or {}
    assert set(shapes) <= s.legit_shapes, set(shapes) - s.legit_shapes


async def run(script: list[tuple[str, tuple[str, Any]]], seed: int) -> None:
    rnd = random.Random(seed)
    async with Registry(MemoryStore(), LocalBus(), hooks=ClassroomHooks()) as registry:
        class_room = await registry.acquire(DocumentName("c1/class"))
        board_room = await registry.acquire(DocumentName("c1/board"))
        s = Session(class_room, board_room)
        for who, action in script:
            if who == "eve":
                s.eve(action, rnd)
            else:
                s.legit(action)
            await asyncio.sleep(0)  # the rooms broadcast once per loop turn
            for r in (*s.cls.values(), *s.board.values()):
                r.drain()
            check_watcher(s)
        fresh: Doc[Any] = Doc()
        fresh.apply_update(class_room.doc.get_update())
        chat_ids = {m.get("id") for m in fresh.get("chat", type=Array).to_py() or []}
        assert set(s.legit_chat) <= chat_ids
        assert (fresh.get("state", type=Map).to_py() or {}) == s.tutor_state
        if s.ann_hand is not None:
            assert fresh.get("hands", type=Map).get("ann") == s.ann_hand
        board: Doc[Any] = Doc()
        board.apply_update(board_room.doc.get_update())
        shapes = set(board.get("shapes", type=Map).to_py() or {})
        required = {x for x in s.legit_shapes if not x.startswith("eve")} - s.erased
        assert required <= shapes
        assert shapes <= s.legit_shapes
        assert _content(s.cls["watcher"].doc) == _content(fresh)


def _content(doc: Doc[Any]) -> dict[str, Any]:
    return {
        "state": doc.get("state", type=Map).to_py(),
        "hands": doc.get("hands", type=Map).to_py(),
        "chat": doc.get("chat", type=Array).to_py(),
    }


steps = st.lists(
    st.one_of(
        st.tuples(st.just("eve"), eve_actions),
        st.tuples(st.just("legit"), legit_actions),
    ),
    min_size=1,
    max_size=25,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(script=steps, seed=st.integers(0, 2**32))
def test_an_adversarial_student_never_breaks_the_classroom(
    script: list[tuple[str, tuple[str, Any]]], seed: int
) -> None:
    asyncio.run(run(script, seed))


def test_structs_under_a_client_id_another_user_owns_are_refused() -> None:
    """Yjs ignores a struct whose clock it already holds: a forgery at the tutor's next
    clocks would make the tutor's own in-flight writes vanish on arrival."""

    async def scenario() -> None:
        async with Registry(MemoryStore(), LocalBus(), hooks=ClassroomHooks()) as registry:
            room = await registry.acquire(DocumentName("c1/class"))
            tutor, eve = Replica(room, TUTOR), Replica(room, EVE)
            forger: Doc[Any] = Doc(client_id=tutor.doc.client_id)
            forger.get("hands", type=Map)["eve"] = 1.0  # even a write Eve may make herself
            before = room.doc.get_update()
            assert eve.send(bytes(SyncUpdate(forger.get_update())))
            assert room.doc.get_update() == before
            tutor.edit(lambda d: d.get("state", type=Map).update({"boardLocked": True}))
            assert room.doc.get("state", type=Map).to_py() == {"boardLocked": True}

    asyncio.run(scenario())


def test_client_id_owners_survive_a_reload_through_the_logs_authors() -> None:
    async def scenario() -> None:
        store = MemoryStore()
        tutor_doc: Doc[Any] = Doc()
        async with Registry(store, LocalBus(), hooks=ClassroomHooks()) as registry:
            room = await registry.acquire(DocumentName("c1/class"))
            tutor = Replica(room, TUTOR)
            tutor.edit(lambda d: d.get("state", type=Map).update({"boardLocked": True}))
            tutor_doc = tutor.doc
        async with Registry(store, LocalBus(), hooks=ClassroomHooks()) as registry:
            room = await registry.acquire(DocumentName("c1/class"))
            assert room.index.owners[tutor_doc.client_id] == "tutor"
            eve = Replica(room, EVE)
            forger: Doc[Any] = Doc(client_id=tutor_doc.client_id)
            forger.apply_update(room.doc.get_update())
            before = forger.get_state()
            forger.get("hands", type=Map)["eve"] = 1.0
            eve.send(bytes(SyncUpdate(forger.get_update(before))))
            assert room.doc.get("hands", type=Map).to_py() == {}

    asyncio.run(scenario())


def _frames(state: FullState) -> list[bytes]:
    frames: list[bytes] = []
    while (frame := state.frame(len(frames))) is not None:
        frames.append(frame)
    return frames


def _update_of(frame: bytes) -> bytes:
    message = decode(frame)
    assert isinstance(message, SyncUpdate | SyncStep2)
    return message.update
