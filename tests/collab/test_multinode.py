"""Several registries (nodes) on one bus: fan-out, catch-up, presence, node death, repair.

Every test runs on each bus implementation (the ``cluster`` fixture).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import pytest
from pycrdt import Array, Map

from collab.busframes import Kind
from collab.errors import CloseCode, ConnectionEnded
from collab.limits import Limits
from collab.memory import MemoryStore
from collab.ports import ControlCall, ControlKind, DocumentName, LoadedDocument, Peer
from collab.registry import Registry

from .buses import NODE_TIMEOUT, Cluster
from .peers import ScriptedPeer, eventually, push

pytestmark = pytest.mark.anyio
NAME = DocumentName("c1/board")
TUTOR = Peer("tutor-1", "Ada", "tutor")
FAST = Limits(save_debounce=0.01, save_max_delay=0.05, anti_entropy_interval=0.2)
# Saves far in the future: the node holds its clients' changes unsaved for the whole test.
UNSAVED = Limits(save_debounce=60, save_max_delay=60, anti_entropy_interval=0.2)


class GatedStore(MemoryStore):
    """A shared store whose loads can be held open, to overlap a load with live edits."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.gate.set()
        self.loading = asyncio.Event()

    async def load(self, name: DocumentName) -> LoadedDocument:
        snapshot = await super().load(name)  # read first: what the store holds right now
        self.loading.set()
        await self.gate.wait()
        return snapshot


@asynccontextmanager
async def nodes(
    cluster: Cluster, store: MemoryStore, *limits: Limits
) -> AsyncIterator[list[Registry]]:
    async with AsyncExitStack() as stack:
        registries = []
        for lim in limits:
            registry = Registry(store, cluster.node(), limits=lim)
            registries.append(await stack.enter_async_context(registry))
        yield registries


def array(peer: ScriptedPeer) -> list[Any]:
    return list(peer.doc.get("a", type=Array).to_py())


async def test_updates_cross_nodes_and_only_the_origin_journals(cluster: Cluster) -> None:
    store = MemoryStore()
    async with nodes(cluster, store, FAST, FAST) as (a_node, b_node), AsyncExitStack() as st:
        a = await ScriptedPeer(a_node, NAME, TUTOR).start(st)
        b = await ScriptedPeer(b_node, NAME, TUTOR).start(st)
        await a.edit(lambda d: d.get("m", type=Map).update({"from": "a"}))
        await b.until(lambda: b.doc.get("m", type=Map).to_py() == {"from": "a"})
        await b.edit(push("from-b"))
        await a.until(lambda: array(a) == ["from-b"])
        await eventually(lambda: len(store.logs[NAME]) == 2)
        # Each node has heard the other saved its update: nothing to keep when stopping.
        await eventually(
            lambda: not any(n.rooms[NAME].replicator.unsaved for n in (a_node, b_node))
        )
    assert [u.author for u in store.logs[NAME]] == ["tutor-1", "tutor-1"]


async def test_a_node_joining_late_sees_another_nodes_unsaved_changes(cluster: Cluster) -> None:
    store = MemoryStore()
    async with nodes(cluster, store, UNSAVED, FAST) as (a_node, b_node), AsyncExitStack() as st:
        a = await ScriptedPeer(a_node, NAME, TUTOR).start(st)
        await a.edit(push(1))
        await a.edit(push(2))
        assert store.logs[NAME] == [], "node A has saved nothing yet"
        b = await ScriptedPeer(b_node, NAME, TUTOR).start(st)
        await b.until(lambda: array(b) == [1, 2])
        await a.edit(push(3))
        await b.until(lambda: array(b) == [1, 2, 3])


async def test_updates_published_while_a_room_loads_are_kept(cluster: Cluster) -> None:
    """The race of the issue: B reads the store, A changes the document twice (unsaved),
    then B's load finishes. B subscribed before loading, so it misses nothing."""
    store = GatedStore()
    async with nodes(cluster, store, UNSAVED, FAST) as (a_node, b_node), AsyncExitStack() as st:
        a = await ScriptedPeer(a_node, NAME, TUTOR).start(st)
        await a.edit(push(1))
        store.gate.clear()
        store.loading.clear()
        b_join = asyncio.create_task(b_node.acquire(NAME))
        await asyncio.wait_for(store.loading.wait(), 2)
        await a.edit(push(2))
        await a.edit(push(3))
        store.gate.set()
        room = await asyncio.wait_for(b_join, 2)
        try:
            await eventually(lambda: room.doc.get("a", type=Array).to_py() == [1, 2, 3])
        finally:
            b_node.release(room)


async def test_lost_frames_are_repaired_by_gaps_and_anti_entropy(cluster: Cluster) -> None:
    store = MemoryStore()
    async with nodes(cluster, store, FAST, FAST) as (a_node, b_node), AsyncExitStack() as st:
        a = await ScriptedPeer(a_node, NAME, TUTOR).start(st)
        b = await ScriptedPeer(b_node, NAME, TUTOR).start(st)
        await a.edit(push(0))
        await b.until(lambda: array(b) == [0])
        # Every update to B is lost: only the periodic announcement can repair the last one.
        cluster.drop(lambda channel, frame, to: frame.kind is Kind.UPDATE)
        await a.edit(push(1))
        await a.edit(push(2))
        await b.until(lambda: array(b) == [0, 1, 2], deadline=5)
        # One frame lost in the middle of a stream: the next one shows the gap.
        lost: list[int] = []

        def once(channel: str, frame: Any, to: Any) -> bool:
            if frame.kind is Kind.UPDATE and not lost:
                lost.append(frame.seq)
                return True
            return False

        cluster.drop(once)
        for i in range(3, 6):
            await a.edit(push(i))
        await b.until(lambda: array(b) == list(range(6)), deadline=5)
        assert lost


async def test_a_lost_delete_is_repaired_by_the_delete_set_digest(cluster: Cluster) -> None:
    store = MemoryStore()
    async with nodes(cluster, store, FAST, FAST) as (a_node, b_node), AsyncExitStack() as st:
        a = await ScriptedPeer(a_node, NAME, TUTOR).start(st)
        b = await ScriptedPeer(b_node, NAME, TUTOR).start(st)
        await a.edit(push("x"))
        await a.edit(push("y"))
        await b.until(lambda: array(b) == ["x", "y"])
        # A delete-only update changes no state vector: only the digest can reveal it.
        cluster.drop(lambda channel, frame, to: frame.kind is Kind.UPDATE)

        def delete_first(doc: Any) -> None:
            del doc.get("a", type=Array)[0]

        await a.edit(delete_first)
        await b.until(lambda: array(b) == ["y"], deadline=5)


async def test_presence_crosses_nodes_and_leaves_with_the_client(cluster: Cluster) -> None:
    store = MemoryStore()
    async with nodes(cluster, store, FAST, FAST) as (a_node, b_node), AsyncExitStack() as st:
        a = await ScriptedPeer(a_node, NAME, TUTOR).start(st)
        b = await ScriptedPeer(b_node, NAME, TUTOR).start(st)
        await a.say(101, 1, '{"cursor":[1,2]}')
        await b.until(lambda: 101 in b.presence)
        # A late joiner on B sees A's client at once.
        late = await ScriptedPeer(b_node, NAME, TUTOR).start(st)
        await late.until(lambda: 101 in late.presence)
        await a.stop()
        await b.until(lambda: 101 not in b.presence)
        await late.until(lambda: 101 not in late.presence)


async def test_a_silent_nodes_presence_goes_and_its_unsaved_updates_are_kept(
    cluster: Cluster,
) -> None:
    """What a kill -9 looks like from a survivor: no goodbye, no save."""
    store = MemoryStore()
    async with nodes(cluster, store, UNSAVED, FAST) as (a_node, b_node), AsyncExitStack() as st:
        a = await ScriptedPeer(a_node, NAME, TUTOR).start(st)
        b = await ScriptedPeer(b_node, NAME, TUTOR).start(st)
        await a.say(101, 1, '{"cursor":[1,2]}')
        await a.edit(push("acknowledged"))
        await b.until(lambda: 101 in b.presence and array(b) == ["acknowledged"])
        cluster.partition(a_node.bus)
        started = asyncio.get_running_loop().time()
        await b.until(lambda: 101 not in b.presence, deadline=NODE_TIMEOUT * 8)
        assert asyncio.get_running_loop().time() - started < NODE_TIMEOUT * 6
        await eventually(lambda: len(store.logs[NAME]) == 1, deadline=2)
        assert array(a) == ["acknowledged"]
    doc = (await store.load(NAME)).to_doc()
    assert doc.get("a", type=Array).to_py() == ["acknowledged"]


async def test_a_saved_update_is_not_journaled_again_when_its_node_goes(
    cluster: Cluster,
) -> None:
    store = MemoryStore()
    async with nodes(cluster, store, FAST, FAST) as (a_node, b_node), AsyncExitStack() as st:
        a = await ScriptedPeer(a_node, NAME, TUTOR).start(st)
        b = await ScriptedPeer(b_node, NAME, TUTOR).start(st)
        await a.edit(push(1))
        await b.until(lambda: array(b) == [1])
        await eventually(lambda: not b_node.rooms[NAME].replicator.unsaved)
        cluster.partition(a_node.bus)
        await eventually(lambda: a_node.bus.node_id not in _heard(b_node), deadline=3)
    assert len(store.logs[NAME]) == 1


def _revoker(registry: Registry) -> Callable[[ControlCall], None]:
    def apply(call: ControlCall) -> None:
        registry.end_connections(
            lambda _doc, peer: peer.user_id == call.user,
            ConnectionEnded(call.reason, CloseCode.UNAUTHORIZED),
        )

    return apply


def _heard(registry: Registry) -> set[str]:
    return set(registry.bus._heard)  # type: ignore[attr-defined]


async def test_a_partitioned_node_reconverges_when_healed(cluster: Cluster) -> None:
    store = MemoryStore()
    async with nodes(cluster, store, FAST, FAST) as (a_node, b_node), AsyncExitStack() as st:
        a = await ScriptedPeer(a_node, NAME, TUTOR).start(st)
        b = await ScriptedPeer(b_node, NAME, TUTOR).start(st)
        await a.say(101, 1, '{"cursor":[1,2]}')
        await b.until(lambda: 101 in b.presence)
        cluster.partition(a_node.bus)
        await a.edit(push("a"))
        await b.edit(push("b"))
        await b.until(lambda: 101 not in b.presence, deadline=3)
        cluster.heal(a_node.bus)
        await a.until(lambda: sorted(array(a)) == ["a", "b"], deadline=5)
        await b.until(lambda: sorted(array(b)) == ["a", "b"], deadline=5)
        # The healed node's presence comes back with the catch-up.
        await b.until(lambda: 101 in b.presence, deadline=5)


async def test_control_calls_end_matching_connections_on_every_node(cluster: Cluster) -> None:
    store = MemoryStore()
    student = Peer("student-7", "Bo", "student")
    async with nodes(cluster, store, FAST, FAST) as registries, AsyncExitStack() as st:
        for registry in registries:
            registry.bus.on_control(_revoker(registry))
        on_a = await ScriptedPeer(registries[0], NAME, student).start(st)
        on_b = await ScriptedPeer(registries[1], NAME, student).start(st)
        tutor = await ScriptedPeer(registries[1], NAME, TUTOR).start(st)
        await eventually(lambda: all(r.bus.connected for r in registries), deadline=5)
        await registries[0].bus.publish_control(
            ControlCall(ControlKind.ACCESS_REVOKED, user="student-7", reason="lapsed")
        )
        for peer in (on_a, on_b):
            code, reason = await asyncio.wait_for(peer.closed, 3)
            assert (code, reason) == (CloseCode.UNAUTHORIZED, "lapsed")
        assert not tutor.closed.done()


async def test_a_client_that_moved_nodes_keeps_its_cursor_when_the_old_node_lets_go(
    cluster: Cluster,
) -> None:
    store = MemoryStore()
    async with nodes(cluster, store, FAST, FAST) as (a_node, b_node), AsyncExitStack() as st:
        old = await ScriptedPeer(a_node, NAME, TUTOR).start(st)
        watcher = await ScriptedPeer(b_node, NAME, TUTOR).start(st)
        await old.say(101, 1, '{"cursor":[1,1]}')
        await watcher.until(lambda: 101 in watcher.presence)
        # A relay of what this node sent (same clock) is not a claim...
        await watcher.say(101, 1, '{"cursor":[1,1]}')
        # ...but the client itself, reconnected here, renews with a newer clock.
        moved = await ScriptedPeer(b_node, NAME, TUTOR).start(st)
        await moved.say(101, 2, '{"cursor":[2,2]}')
        await watcher.until(lambda: watcher.presence.get(101) == '{"cursor":[2,2]}')
        await old.stop()  # node A now says 101 is gone: it is not, it lives on node B
        # Nothing reaches the watcher (nothing changed for it): poll the node's table.
        await eventually(lambda: 101 not in b_node.rooms[NAME].replicator.remote, deadline=3)
        assert watcher.presence.get(101) == '{"cursor":[2,2]}'
