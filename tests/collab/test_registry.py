"""Loading once, saving with retries, unloading only when nothing is left to save."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from contextlib import AsyncExitStack
from typing import Any

import pytest
from pycrdt import Array, Doc, Map

from collab.errors import RoomUnavailable
from collab.limits import Limits
from collab.memory import LocalBus, MemoryStore
from collab.ports import DocumentName, LoadedDocument, Peer, StoredUpdate
from collab.registry import Registry

from .peers import ScriptedPeer, eventually, push, wait_for

pytestmark = pytest.mark.anyio
NAME = DocumentName("c1/board")
TUTOR = Peer("tutor-1", "Ada", "tutor")


class GatedStore(MemoryStore):
    """Counts loads and holds them until released, to make concurrent joins overlap."""

    def __init__(self) -> None:
        super().__init__()
        self.loads = 0
        self.attempts = 0
        self.gate = asyncio.Event()
        self.appended = asyncio.Event()

    async def load(self, name: DocumentName) -> LoadedDocument:
        self.loads += 1
        await self.gate.wait()
        return await super().load(name)

    async def append(self, batches: Mapping[DocumentName, Sequence[StoredUpdate]]) -> None:
        self.attempts += 1
        await super().append(batches)
        self.appended.set()


async def test_concurrent_joins_share_one_load() -> None:
    store = GatedStore()
    async with Registry(store, LocalBus()) as registry:
        waiters = [asyncio.create_task(registry.acquire(NAME)) for _ in range(10)]
        await asyncio.sleep(0)
        store.gate.set()
        rooms = await wait_for(asyncio.gather(*waiters))
        assert store.loads == 1
        assert all(r is rooms[0] for r in rooms)


async def test_a_failed_load_is_reported_to_every_waiter_and_retried_next_time() -> None:
    store = GatedStore()
    store.fail = True
    async with Registry(store, LocalBus()) as registry:
        store.gate.set()
        results = await asyncio.gather(
            *(registry.acquire(NAME) for _ in range(3)), return_exceptions=True
        )
        assert all(isinstance(r, RoomUnavailable) for r in results)
        assert NAME not in registry.rooms
        store.fail = False
        room = await registry.acquire(NAME)
        assert registry.rooms[NAME] is room


async def test_failed_saves_keep_the_room_and_retry_until_the_store_recovers() -> None:
    store = GatedStore()
    store.gate.set()
    limits = Limits(
        save_debounce=0.01, save_max_delay=0.05, save_retry_initial=0.01, unload_grace=0.0
    )
    async with Registry(store, LocalBus(), limits=limits) as registry:
        async with _stack() as stack:
            peer = await ScriptedPeer(registry, NAME, TUTOR).start(stack)
            store.fail = True
            await peer.edit(lambda d: d.get("a", type=Array).append("stroke"))
            await eventually(
                lambda: NAME in registry.rooms and registry.rooms[NAME].journal.pending == 1
            )
        # The client left and the grace period is zero, but the update is not saved yet.
        await eventually(lambda: store.attempts >= 3)
        assert registry.reap() == []
        assert NAME in registry.rooms
        store.fail = False
        await wait_for(store.appended.wait())
        await eventually(lambda: NAME not in registry.rooms)
    reloaded: Doc[Any] = Doc()
    loaded = await store.load(NAME)
    for u in loaded.tail:
        reloaded.apply_update(u)
    assert reloaded.get("a", type=Array).to_py() == ["stroke"]
    assert store.logs[NAME][0].author == "tutor-1"


async def test_idle_room_unloads_after_grace_and_reloads_with_content() -> None:
    store = MemoryStore()
    limits = Limits(save_debounce=0.01, save_max_delay=0.05, unload_grace=0.2)
    async with Registry(store, LocalBus(), limits=limits) as registry:
        async with _stack() as stack:
            peer = await ScriptedPeer(registry, NAME, TUTOR).start(stack)
            await peer.edit(lambda d: d.get("m", type=Map).update({"k": "v"}))
            await eventually(lambda: len(store.logs[NAME]) == 1)
        left_at = asyncio.get_running_loop().time()
        await eventually(lambda: NAME not in registry.rooms)
        assert asyncio.get_running_loop().time() - left_at >= 0.2
        async with _stack() as stack:
            again = await ScriptedPeer(registry, NAME, TUTOR).start(stack)
            assert again.doc.get("m", type=Map).to_py() == {"k": "v"}


async def test_shutdown_flushes_pending_updates() -> None:
    store = MemoryStore()
    limits = Limits(save_debounce=60, save_max_delay=60)
    async with Registry(store, LocalBus(), limits=limits) as registry, _stack() as stack:
        peer = await ScriptedPeer(registry, NAME, TUTOR).start(stack)
        for i in range(5):
            await peer.edit(push(i))
        await eventually(lambda: registry.rooms[NAME].journal.pending == 5)
        assert store.logs[NAME] == []
    assert len(store.logs[NAME]) == 5


async def test_compaction_runs_after_enough_updates_and_keeps_content() -> None:
    store = MemoryStore()
    limits = Limits(save_debounce=0.005, save_max_delay=0.01, compact_after_updates=10)
    async with Registry(store, LocalBus(), limits=limits) as registry, _stack() as stack:
        peer = await ScriptedPeer(registry, NAME, TUTOR).start(stack)
        for i in range(25):
            await peer.edit(push(i))
            await asyncio.sleep(0.005)
        await eventually(lambda: store.compacted[NAME] >= 20)
    loaded = await store.load(NAME)
    assert loaded.snapshot is not None
    doc = loaded.to_doc()
    assert doc.get("a", type=Array).to_py() == list(range(25))


async def test_two_registries_on_one_bus_fan_out_updates() -> None:
    bus = LocalBus()
    store = MemoryStore()
    async with (
        Registry(store, bus) as node_a,
        Registry(store, bus.sibling()) as node_b,
        _stack() as stack,
    ):
        a = await ScriptedPeer(node_a, NAME, TUTOR).start(stack)
        b = await ScriptedPeer(node_b, NAME, TUTOR).start(stack)
        await a.edit(lambda d: d.get("m", type=Map).update({"from": "a"}))
        await b.until(lambda: b.doc.get("m", type=Map).to_py() == {"from": "a"})
        # Once A says it saved it, B holds nothing of A's to keep when it stops.
        await eventually(lambda: not node_b.rooms[NAME].replicator.unsaved)
    # Only the node where the update arrived journals it.
    assert len(store.logs[NAME]) == 1


def _stack() -> AsyncExitStack:
    return AsyncExitStack()


async def test_grace_period_counts_from_the_last_release_not_the_load() -> None:
    limits = Limits(unload_grace=0.2)
    async with Registry(MemoryStore(), LocalBus(), limits=limits) as registry:
        async with registry.hold(NAME):
            # Held (as a board connection holds its classroom document) past the grace.
            await asyncio.sleep(0.3)
            assert registry.reap() == []
        assert registry.reap() == [], "just released: the grace period starts now"
        await eventually(lambda: NAME not in registry.rooms)


async def test_a_full_room_refuses_the_next_client_with_1013() -> None:
    from collab.errors import CloseCode

    limits = Limits(max_clients_per_room=2)
    async with Registry(MemoryStore(), LocalBus(), limits=limits) as registry, _stack() as stack:
        await ScriptedPeer(registry, NAME, TUTOR).start(stack)
        await ScriptedPeer(registry, NAME, TUTOR).start(stack)
        third = await ScriptedPeer(registry, NAME, TUTOR).start(stack, handshake=False)
        code, _ = await wait_for(third.closed)
        assert code == CloseCode.TRY_AGAIN_LATER
        assert len(registry.rooms[NAME].clients) == 2


async def test_one_save_writes_every_busy_room_in_one_transaction() -> None:
    store = GatedStore()
    store.gate.set()
    calls: list[list[str]] = []
    original = store.append

    async def counting(batches: Mapping[DocumentName, Sequence[StoredUpdate]]) -> None:
        calls.append(sorted(batches))
        await original(batches)

    store.append = counting  # type: ignore[method-assign]
    limits = Limits(save_debounce=0.05, save_max_delay=1.0)
    async with Registry(store, LocalBus(), limits=limits) as registry, _stack() as stack:
        rooms = [DocumentName(f"c{i}/board") for i in range(3)]
        peers = [await ScriptedPeer(registry, name, TUTOR).start(stack) for name in rooms]
        for i, peer in enumerate(peers):
            await peer.edit(push(i))
        await eventually(lambda: all(len(store.logs[name]) == 1 for name in rooms))
    assert calls[0] == sorted(rooms), calls


class SlowStore(GatedStore):
    """Each append takes 20 ms, like a commit on a loaded database."""

    async def append(self, batches: Mapping[DocumentName, Sequence[StoredUpdate]]) -> None:
        await asyncio.sleep(0.02)
        await super().append(batches)


async def test_steady_edits_give_one_save_per_debounce_not_back_to_back_saves() -> None:
    store = SlowStore()
    store.gate.set()
    limits = Limits(save_debounce=0.05, save_max_delay=0.1)
    async with Registry(store, LocalBus(), limits=limits) as registry, _stack() as stack:
        peer = await ScriptedPeer(registry, NAME, TUTOR).start(stack)
        started = asyncio.get_running_loop().time()
        for i in range(40):  # 40 edits over ~0.4 s, never quiet for a whole debounce
            await peer.edit(push(i))
            await asyncio.sleep(0.01)
        elapsed = asyncio.get_running_loop().time() - started
        await eventually(lambda: len(store.logs[NAME]) == 40)
    # At most one save per max-delay window (plus the first and the last).
    assert store.attempts <= elapsed / limits.save_max_delay + 3, (store.attempts, elapsed)
