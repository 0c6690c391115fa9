"""Saved acknowledgements: sent only after the store has committed, only to clients that
ask, and a held first SyncStep2 makes a stock client's "synced" mean "saved"."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from contextlib import AsyncExitStack
from typing import Any

import pytest
from pycrdt import Doc, Map

from collab.limits import Limits
from collab.memory import LocalBus, MemoryStore
from collab.ports import DocumentName, Peer, StoredUpdate
from collab.protocol import Saved, SavedRequest, SyncStep2
from collab.registry import Registry

from .peers import ScriptedPeer, wait_for

pytestmark = pytest.mark.anyio
NAME = DocumentName("c1/board")
TUTOR = Peer("tutor-1", "Ada", "tutor")


class GatedStore(MemoryStore):
    """A store whose writes wait for the test to let them through."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.writing = asyncio.Event()

    async def append(self, batches: Mapping[DocumentName, Sequence[StoredUpdate]]) -> None:
        self.writing.set()
        await self.gate.wait()
        await super().append(batches)


def stored_keys(store: MemoryStore) -> set[str]:
    doc: Doc[Any] = Doc()
    for update in store.logs[NAME]:
        doc.apply_update(update.data)
    return set(doc.get("shapes", type=Map).keys())


def saved(peer: ScriptedPeer) -> list[int]:
    return [m.marker for m in peer.received if isinstance(m, Saved)]


async def test_saved_is_sent_only_after_the_store_commits() -> None:
    store = GatedStore()
    async with AsyncExitStack() as stack:
        registry = await stack.enter_async_context(
            Registry(store, LocalBus(), limits=Limits(save_debounce=0.01))
        )
        store.gate.set()  # joining reads and writes nothing yet; edits wait below
        peer = await ScriptedPeer(registry, NAME, TUTOR).start(stack)
        store.gate.clear()
        await peer.edit(lambda d: d.get("shapes", type=Map).__setitem__("a", 1))
        await peer.conn.send(bytes(SavedRequest(7)))
        await wait_for(store.writing.wait(), 5)
        # The write is under way but not committed: no acknowledgement yet.
        for _ in range(20):
            await asyncio.sleep(0)
        assert saved(peer) == []
        assert stored_keys(store) == set()
        store.gate.set()
        await peer.until(lambda: saved(peer) == [7], 5)
        assert stored_keys(store) == {"a"}
        # Nothing pending: the next request is answered at once.
        await peer.conn.send(bytes(SavedRequest(8)))
        await peer.until(lambda: saved(peer) == [7, 8], 5)


async def test_clients_that_do_not_ask_are_never_sent_saved() -> None:
    async with AsyncExitStack() as stack:
        registry = await stack.enter_async_context(
            Registry(MemoryStore(), LocalBus(), limits=Limits(save_debounce=0.01))
        )
        asking = await ScriptedPeer(registry, NAME, TUTOR).start(stack)
        stock = await ScriptedPeer(registry, NAME, Peer("t2", "Bo", "tutor")).start(stack)
        await stock.edit(lambda d: d.get("shapes", type=Map).__setitem__("s", 1))
        await asking.edit(lambda d: d.get("shapes", type=Map).__setitem__("a", 1))
        await asking.conn.send(bytes(SavedRequest(1)))
        await asking.until(lambda: saved(asking) == [1], 5)
        await stock.until(lambda: "a" in stock.doc.get("shapes", type=Map), 5)
        assert saved(stock) == []


async def test_a_held_sync_answers_once_the_clients_offline_edits_are_stored() -> None:
    store = GatedStore()
    async with AsyncExitStack() as stack:
        registry = await stack.enter_async_context(
            Registry(
                store,
                LocalBus(),
                limits=Limits(save_debounce=0.01, hold_sync_until_saved=True),
            )
        )
        peer = ScriptedPeer(registry, NAME, TUTOR)
        # Edits made offline, before connecting: the stock client sends them in its
        # SyncStep2, the answer to the server's SyncStep1.
        peer.doc.get("shapes", type=Map)["offline"] = 1
        started = asyncio.create_task(peer.start(stack))
        await wait_for(store.writing.wait(), 5)
        for _ in range(20):
            await asyncio.sleep(0)
        assert not peer.synced.is_set()
        assert not any(isinstance(m, SyncStep2) for m in peer.received)
        store.gate.set()
        await wait_for(started, 5)
        assert stored_keys(store) == {"offline"}
