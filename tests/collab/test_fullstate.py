"""Joiners share one encoding of the document, and never receive stale state."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pycrdt import Array, Doc, Map

from collab import fullstate
from collab.fullstate import REBUILD_MIN_BYTES
from collab.limits import Limits
from collab.memory import LocalBus, MemoryStore
from collab.ports import DocumentName, Peer
from collab.registry import Registry
from collab.room import Room

from .peers import ScriptedPeer, wait_for
from .test_slices import board

NAME = DocumentName("c1/board")
TUTOR = Peer("tutor-1", "Ada", "tutor")


def joiner(n: int) -> Peer:
    return Peer(f"joiner-{n}", f"J{n}", "tutor")


def shapes(doc: Doc[Any]) -> dict[str, Any]:
    result: dict[str, Any] = doc.get("shapes", type=Map).to_py()
    return result


async def settled(room: Room, writer: ScriptedPeer) -> None:
    """Waits until the server holds everything the writer wrote."""

    changed = asyncio.Event()
    subscription = room.doc.observe(lambda _: changed.set())
    try:
        async with asyncio.timeout(30):
            while True:
                changed.clear()
                if shapes(room.doc) == shapes(writer.doc):
                    return
                await changed.wait()
    finally:
        room.doc.unobserve(subscription)


# An operation: draw n strokes (a few, or enough to outgrow the shared encoding), erase
# some, join and check at once, or join while the writer keeps drawing.
ops = st.lists(
    st.one_of(
        st.tuples(st.just("draw"), st.sampled_from([1, 3, 40, 200])),
        st.tuples(st.just("erase"), st.integers(1, 30)),
        st.tuples(st.just("join"), st.just(0)),
        st.tuples(st.just("join-while-drawing"), st.integers(1, 5)),
    ),
    min_size=1,
    max_size=12,
)


@pytest.mark.parametrize("initial", [5, 200], ids=["small-document", "large-document"])
@given(script=ops)
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_a_joiner_gets_exactly_the_current_document(
    initial: int, script: list[tuple[str, int]]
) -> None:
    async def run() -> None:
        async with AsyncExitStack() as stack:
            registry = await stack.enter_async_context(
                Registry(MemoryStore(), LocalBus(), limits=Limits())
            )
            # Small enough that a few draws make the shared encoding stale, so scripts
            # cover both reusing it and encoding it again.
            stack.callback(setattr, fullstate, "REBUILD_MIN_BYTES", REBUILD_MIN_BYTES)
            fullstate.REBUILD_MIN_BYTES = 2048
            writer = await ScriptedPeer(registry, NAME, TUTOR).start(stack)
            source = board(initial, seed=initial)
            await writer.edit(lambda d: d.apply_update(source.get_update()))
            room = registry.rooms[NAME]
            await settled(room, writer)
            drawn = initial
            for n, (op, arg) in enumerate(script):
                if op == "draw":
                    more = board(arg, seed=n + 100)
                    renamed = {f"n{n}-{k}": v for k, v in shapes(more).items()}

                    def draw(d: Doc[Any], strokes: dict[str, Any] = renamed) -> None:
                        target = d.get("shapes", type=Map)
                        with d.transaction():
                            for key, value in strokes.items():
                                target[key] = Map({"t": value["t"], "x": value["x"]})

                    await writer.edit(draw)
                    drawn += arg
                elif op == "erase":

                    def erase(d: Doc[Any], count: int = arg) -> None:
                        target = d.get("shapes", type=Map)
                        with d.transaction():
                            for key in sorted(target.keys())[:count]:
                                del target[key]

                    await writer.edit(erase)
                elif op == "join":
                    await settled(room, writer)
                    peer = await ScriptedPeer(registry, NAME, joiner(n)).start(stack)
                    # Synced means it holds all the server held when it answered.
                    assert shapes(peer.doc) == shapes(room.doc)
                else:
                    peer = ScriptedPeer(registry, NAME, joiner(n))
                    started = asyncio.create_task(peer.start(stack))
                    for i in range(arg):

                        def one(d: Doc[Any], key: str = f"live{n}-{i}", x: int = i) -> None:
                            d.get("shapes", type=Map)[key] = Map({"t": "p", "x": x})

                        await writer.edit(one)
                    await wait_for(started, 10)
                    await settled(room, writer)

                    def converged(p: ScriptedPeer = peer) -> bool:
                        return shapes(p.doc) == shapes(room.doc)

                    await peer.until(converged, 10)

    asyncio.run(run())


async def _loaded(
    stack: AsyncExitStack, registry: Registry, strokes: int
) -> tuple[Room, ScriptedPeer]:
    """A tutor who filled the board with ``strokes`` strokes, and the board's room."""
    writer = await ScriptedPeer(registry, NAME, TUTOR).start(stack)
    source = board(strokes)
    await writer.edit(lambda d: d.apply_update(source.get_update()))
    room = registry.rooms[NAME]
    await settled(room, writer)
    return room, writer


def test_joiners_share_one_encoding_until_the_document_outgrows_it() -> None:
    async def run() -> None:
        async with AsyncExitStack() as stack:
            registry = await stack.enter_async_context(
                Registry(MemoryStore(), LocalBus(), limits=Limits())
            )
            stack.callback(setattr, fullstate, "REBUILD_MIN_BYTES", REBUILD_MIN_BYTES)
            fullstate.REBUILD_MIN_BYTES = 2048
            room, writer = await _loaded(stack, registry, 600)

            first = await ScriptedPeer(registry, NAME, joiner(1)).start(stack)
            shared = room._full
            assert shared is not None
            assert len(shared.frames) > 3
            frames = list(shared.frames)
            await writer.edit(lambda d: d.get("shapes", type=Map).pop("s1"))
            await settled(room, writer)
            second = await ScriptedPeer(registry, NAME, joiner(2)).start(stack)
            # The same frames, not cut again; the erased stroke reached the joiner anyway.
            assert room._full is shared
            assert all(a is b for a, b in zip(shared.frames, frames, strict=True))
            assert "s1" not in shapes(second.doc)
            assert shapes(second.doc) == shapes(room.doc)

            big = board(400, seed=7)
            grown = {f"g{k}": v for k, v in shapes(big).items()}

            def grow(d: Doc[Any]) -> None:
                target = d.get("shapes", type=Map)
                for key, value in grown.items():
                    target[key] = Map({"t": "p", "pts": Array(value["pts"])})

            await writer.edit(grow)
            await settled(room, writer)
            assert shared.stale(room.size)
            third = await ScriptedPeer(registry, NAME, joiner(3)).start(stack)
            assert room._full is not shared  # encoded again: the last message stays short
            assert shapes(third.doc) == shapes(room.doc) == shapes(first.doc)

    asyncio.run(run())


def test_a_large_change_since_the_shared_state_is_cut_once_for_every_joiner() -> None:
    """The shared state may trail the document by up to a quarter of it: joiners then
    share that difference's slices too, instead of each cutting it again."""

    async def run() -> None:
        async with AsyncExitStack() as stack:
            registry = await stack.enter_async_context(
                Registry(MemoryStore(), LocalBus(), limits=Limits())
            )
            room, writer = await _loaded(stack, registry, 1500)
            first = await ScriptedPeer(registry, NAME, joiner(1)).start(stack)
            shared = room._full
            assert shared is not None

            more = {f"m{k}": v for k, v in shapes(board(120, seed=3)).items()}

            def grow(d: Doc[Any]) -> None:
                target = d.get("shapes", type=Map)
                for key, value in more.items():
                    target[key] = Map({"t": "p", "pts": Array(value["pts"])})

            await writer.edit(grow)
            await settled(room, writer)
            assert not shared.stale(room.size)  # grown, but by less than a quarter
            second = await ScriptedPeer(registry, NAME, joiner(2)).start(stack)
            rest = room._rest[2]
            assert isinstance(rest, fullstate.FullState)  # larger than a slice: shared
            cut = list(rest.frames)
            assert len(cut) > 1
            third = await ScriptedPeer(registry, NAME, joiner(3)).start(stack)
            assert room._full is shared
            assert room._rest[2] is rest
            assert all(a is b for a, b in zip(rest.frames, cut, strict=True))
            assert shapes(second.doc) == shapes(third.doc) == shapes(room.doc)
            await first.until(lambda: shapes(first.doc) == shapes(room.doc), 10)

    asyncio.run(run())
