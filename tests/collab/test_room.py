"""Rooms through the registry over in-memory pipes: sync, presence, isolation of bad clients."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack
from typing import Any

import pytest
from pycrdt import Array, Doc, Map, Text

from collab.errors import CloseCode
from collab.limits import Limits
from collab.memory import LocalBus, MemoryStore
from collab.ports import DocumentName, Peer
from collab.protocol import SyncUpdate, encode_update
from collab.registry import Registry

from .peers import ScriptedPeer, eventually, push, wait_for

pytestmark = pytest.mark.anyio

TUTOR = Peer("tutor-1", "Ada", "tutor")
STUDENT = Peer("student-1", "Bo", "student")
BOARD = DocumentName("c1/board")
OBSERVER = Peer("observer-1", "Cy", "observer", read_only=True)


@pytest.fixture
async def stack() -> AsyncIterator[AsyncExitStack]:
    async with AsyncExitStack() as stack:
        yield stack


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


async def open_registry(stack: AsyncExitStack, store: MemoryStore, **limits: float) -> Registry:
    registry = Registry(store, LocalBus(), limits=Limits(**limits))  # type: ignore[arg-type]
    return await stack.enter_async_context(registry)


def board(doc: Doc[Any]) -> dict[str, object]:
    return {
        "m": doc.get("m", type=Map).to_py(),
        "a": doc.get("a", type=Array).to_py(),
        "t": str(doc.get("t", type=Text)),
    }


async def test_two_clients_converge_on_map_array_and_text(
    stack: AsyncExitStack, store: MemoryStore
) -> None:
    registry = await open_registry(stack, store)
    a = await ScriptedPeer(registry, "c1/board", TUTOR).start(stack)
    b = await ScriptedPeer(registry, "c1/board", STUDENT).start(stack)

    def edit_a(doc: Doc[Any]) -> None:
        doc.get("m", type=Map)["colour"] = "red"
        doc.get("a", type=Array).extend([1, 2, 3])
        doc.get("t", type=Text).insert(0, "hello")

    def edit_b(doc: Doc[Any]) -> None:
        doc.get("t", type=Text).insert(0, ">> ")
        doc.get("a", type=Array).append(4)

    await a.edit(edit_a)
    await b.edit(edit_b)
    await a.until(lambda: board(a.doc) == board(b.doc) and len(board(a.doc)["a"]) == 4)  # type: ignore[arg-type]
    assert board(a.doc)["t"] in (">> hello", "hello>> ")
    assert board(a.doc)["m"] == {"colour": "red"}
    room = registry.rooms[BOARD]
    assert board(room.doc) == board(a.doc)


async def test_late_joiner_gets_full_state(stack: AsyncExitStack, store: MemoryStore) -> None:
    registry = await open_registry(stack, store)
    a = await ScriptedPeer(registry, "c1/board", TUTOR).start(stack)
    for i in range(20):
        await a.edit(push(i))
    room = registry.rooms[BOARD]
    await eventually(lambda: len(room.doc.get("a", type=Array)) == 20)
    late = await ScriptedPeer(registry, "c1/board", STUDENT).start(stack)
    assert late.doc.get("a", type=Array).to_py() == list(range(20))


async def test_presence_relayed_and_removed_at_once_when_connection_drops(
    stack: AsyncExitStack, store: MemoryStore
) -> None:
    registry = await open_registry(stack, store)
    a = await ScriptedPeer(registry, "c1/board", TUTOR).start(stack)
    b = await ScriptedPeer(registry, "c1/board", STUDENT).start(stack)
    await a.say(1111, 1, '{"user":{"name":"Ada"},"cursor":[1,2]}')
    await b.until(lambda: 1111 in b.presence)
    assert a.presence[1111].startswith('{"user"'), "the sender gets its own state echoed"
    # A late joiner is told who is present.
    c = await ScriptedPeer(registry, "c1/board", STUDENT).start(stack)
    await c.until(lambda: 1111 in c.presence)
    # Abrupt drop: no null state sent, the transport just ends.
    await a.conn.close(1006)
    await b.until(lambda: 1111 not in b.presence, deadline=1.0)
    await c.until(lambda: 1111 not in c.presence, deadline=1.0)


async def test_one_connection_cannot_overwrite_or_erase_anothers_presence(
    stack: AsyncExitStack, store: MemoryStore
) -> None:
    registry = await open_registry(stack, store)
    a = await ScriptedPeer(registry, "c1/board", TUTOR).start(stack)
    b = await ScriptedPeer(registry, "c1/board", STUDENT).start(stack)
    await a.say(7, 1, '{"n":"a"}')
    await b.until(lambda: 7 in b.presence)
    await b.say(7, 5, "null")  # forged removal
    await b.say(7, 6, '{"n":"forged"}')  # forged state
    await b.say(8, 1, '{"n":"b"}')  # its own id, to know the forged ones were processed
    await a.until(lambda: 8 in a.presence)
    assert a.presence[7] == '{"n":"a"}'
    assert registry.rooms[BOARD].presence.owned_by(
        next(iter(registry.rooms[BOARD].clients.values()))
    ) == [7]


async def test_malformed_frame_closes_only_that_client(
    stack: AsyncExitStack, store: MemoryStore
) -> None:
    registry = await open_registry(stack, store)
    a = await ScriptedPeer(registry, "c1/board", TUTOR).start(stack)
    b = await ScriptedPeer(registry, "c1/board", STUDENT).start(stack)
    bad = await ScriptedPeer(registry, "c1/board", STUDENT).start(stack)
    await a.edit(lambda d: d.get("m", type=Map).update({"k": "v"}))
    await b.until(lambda: b.doc.get("m", type=Map).to_py() == {"k": "v"})
    before = registry.rooms[BOARD].doc.get_update()

    await bad.conn.send(b"\x09\x01\x02")
    code, reason = await wait_for(bad.closed)
    assert code == CloseCode.PROTOCOL_ERROR
    assert reason == "unknown message type 9"
    assert registry.rooms[BOARD].doc.get_update() == before

    await a.edit(lambda d: d.get("m", type=Map).update({"k2": "v2"}))
    await b.until(lambda: "k2" in b.doc.get("m", type=Map).to_py())


async def test_corrupt_update_closes_with_1007_and_leaves_document_unchanged(
    stack: AsyncExitStack, store: MemoryStore
) -> None:
    registry = await open_registry(stack, store)
    a = await ScriptedPeer(registry, "c1/board", TUTOR).start(stack)
    await a.edit(lambda d: d.get("m", type=Map).update({"k": 1}))
    room = registry.rooms[BOARD]
    await eventually(lambda: "k" in room.doc.get("m", type=Map).to_py())
    before = room.doc.get_update()
    bad = await ScriptedPeer(registry, "c1/board", STUDENT).start(stack)
    await bad.conn.send(bytes(SyncUpdate(b"\x05\xff\xff\xff")))
    code, _ = await wait_for(bad.closed)
    assert code == CloseCode.INVALID_PAYLOAD
    assert room.doc.get_update() == before
    assert "c1/board" in registry.rooms


async def test_observer_writes_rejected_but_presence_flows(
    stack: AsyncExitStack, store: MemoryStore
) -> None:
    registry = await open_registry(stack, store)
    tutor = await ScriptedPeer(registry, "c1/board", TUTOR).start(stack)
    observer = await ScriptedPeer(registry, "c1/board", OBSERVER).start(stack)
    await observer.edit(lambda d: d.get("m", type=Map).update({"graffiti": True}))
    await observer.edit(lambda d: d.get("m", type=Map).update({"more": True}))
    await observer.until(lambda: len(observer.denied) == 1)
    await observer.say(42, 1, '{"user":{"name":"Cy"}}')
    await tutor.until(lambda: 42 in tutor.presence)
    assert tutor.doc.get("m", type=Map).to_py() == {}
    assert registry.rooms[BOARD].doc.get("m", type=Map).to_py() == {}
    assert store.logs["c1/board"] == []
    assert observer.denied == ["read-only: this update is not allowed"]


class StalledConnection:
    """A transport whose sends never complete: a phone on a dead link."""

    def __init__(self) -> None:
        self.closed_with: tuple[int, str] | None = None
        self._gate = asyncio.Event()

    async def receive(self) -> bytes:
        await self._gate.wait()
        raise AssertionError("unreachable")

    async def send(self, data: bytes) -> None:
        await self._gate.wait()

    def send_nowait(self, data: bytes) -> bool:
        return False  # its buffer is full: a paused transport

    def send_many_nowait(self, data: Sequence[bytes]) -> bool:
        return False

    async def drained(self) -> None:
        await self._gate.wait()

    def listen(self, on_message: Any, on_end: Any) -> bool:
        return False  # read through receive

    async def close(self, code: int, reason: str = "") -> None:
        self.closed_with = (code, reason)


async def test_slow_client_is_closed_with_1013_and_never_stalls_the_room(
    stack: AsyncExitStack, store: MemoryStore
) -> None:
    from collab.ports import DocumentName
    from collab.session import serve

    registry = await open_registry(stack, store, outbox_messages=16)
    a = await ScriptedPeer(registry, "c1/board", TUTOR).start(stack)
    b = await ScriptedPeer(registry, "c1/board", STUDENT).start(stack)
    stalled = StalledConnection()
    task = asyncio.create_task(serve(registry, stalled, DocumentName("c1/board"), STUDENT))
    await eventually(lambda: len(registry.rooms[BOARD].clients) == 3)
    for i in range(100):
        await a.edit(push(i))
        await asyncio.sleep(0)  # one broadcast per edit, as from a live writer
    await b.until(lambda: len(b.doc.get("a", type=Array)) == 100)
    await wait_for(task)
    assert stalled.closed_with is not None
    assert stalled.closed_with[0] == CloseCode.TRY_AGAIN_LATER
    assert len(registry.rooms[BOARD].clients) == 2


async def test_flood_is_rate_limited_with_1008(stack: AsyncExitStack, store: MemoryStore) -> None:
    registry = await open_registry(stack, store, messages_per_second=10, message_burst=20)
    a = await ScriptedPeer(registry, "c1/board", TUTOR).start(stack)
    for _ in range(50):
        await a.conn.send(bytes.fromhex("03"))
    code, _ = await wait_for(a.closed)
    assert code == CloseCode.POLICY_VIOLATION


async def test_oversized_message_closes_with_1009(
    stack: AsyncExitStack, store: MemoryStore
) -> None:
    registry = await open_registry(stack, store, max_message_bytes=1000)
    a = await ScriptedPeer(registry, "c1/board", TUTOR).start(stack)
    await a.conn.send(encode_update(bytes(2000)))
    code, _ = await wait_for(a.closed)
    assert code == CloseCode.MESSAGE_TOO_BIG


async def test_updates_in_one_loop_turn_leave_as_one_merged_message(
    stack: AsyncExitStack, store: MemoryStore
) -> None:
    registry = await open_registry(stack, store)
    a = await ScriptedPeer(registry, "c1/board", TUTOR).start(stack)
    b = await ScriptedPeer(registry, "c1/board", STUDENT).start(stack)
    source: Doc[Any] = Doc()
    updates: list[bytes] = []
    source.observe(lambda e: updates.append(e.update))
    arr = source.get("a", type=Array)
    for i in range(10):
        arr.append(i)
    before = len(b.received)
    for update in updates:  # queued back to back: the server reads them in one turn
        a.server_end._put(bytes(SyncUpdate(update)))
    await b.until(lambda: len(b.doc.get("a", type=Array)) == 10)
    new = [m for m in b.received[before:] if isinstance(m, SyncUpdate)]
    assert len(new) == 1
    assert b.doc.get("a", type=Array).to_py() == list(range(10))


def test_presence_table_stays_bounded_across_reconnects() -> None:
    from collab.awareness import Entry, Presence

    presence = Presence()
    for i in range(5000):
        owner = object()
        presence.apply(owner, [Entry(i, 1, "{}")])
        assert presence.drop_owner(owner) == [Entry(i, 2, "null")]
    assert len(presence) == 0
    assert len(presence._entries) <= 256 + 1


async def test_a_document_at_its_size_limit_takes_no_more_writes(
    stack: AsyncExitStack, store: MemoryStore
) -> None:
    registry = await open_registry(stack, store, max_document_bytes=4000)
    a = await ScriptedPeer(registry, "c1/board", TUTOR).start(stack)
    b = await ScriptedPeer(registry, "c1/board", STUDENT).start(stack)
    await a.edit(lambda d: d.get("m", type=Map).update({"small": "x" * 1000}))
    await b.until(lambda: "small" in b.doc.get("m", type=Map).to_py())
    before = registry.rooms[BOARD].doc.get_update()
    await a.edit(lambda d: d.get("m", type=Map).update({"big": "x" * 5000}))
    code, reason = await wait_for(a.closed)
    assert code == CloseCode.MESSAGE_TOO_BIG
    assert reason == "document would exceed 4000 bytes"
    assert registry.rooms[BOARD].doc.get_update() == before
