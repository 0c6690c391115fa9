"""Catch-up converges whatever the bus loses: three nodes edit one document while any
subset of the frames between them (hypothesis picks which) is dropped; once the loss
stops, every node ends with the same state vector and content, without a new edit.
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from pycrdt import Array

from collab.limits import Limits
from collab.memory import LocalBroker, LocalBus, MemoryStore
from collab.ports import DocumentName
from collab.registry import Registry
from collab.room import Room

from .peers import state_vector

NAME = DocumentName("c1/board")
LIMITS = Limits(save_debounce=0.01, save_max_delay=0.02, anti_entropy_interval=0.05)

# (node, edit): 0..9 pushes a value, 10 deletes the first element (a delete-only update).
edits = st.lists(st.tuples(st.integers(0, 2), st.integers(0, 10)), min_size=1, max_size=12)
# For each frame on a document channel, in order: whether it is lost (past the end: kept).
losses = st.lists(st.booleans(), max_size=60)


def edit(room: Room, action: int, serial: int) -> None:
    array = room.doc.get("a", type=Array)
    if action == 10:
        if len(array):
            del array[0]
    else:
        array.append(f"{serial}:{action}")


def snapshot(room: Room) -> tuple[list[tuple[int, int]], list[Any]]:
    return sorted(state_vector(room.doc).items()), list(room.doc.get("a", type=Array).to_py())


@settings(max_examples=60, deadline=None)
@given(plan=edits, lost=losses)
def test_catch_up_converges_after_any_interleaving_of_lost_frames(
    plan: list[tuple[int, int]], lost: list[bool]
) -> None:
    async def run() -> None:
        broker = LocalBroker()
        decisions = iter(lost)
        broker.drop = lambda channel, frame, to: (
            channel.startswith("doc:") and next(decisions, False)
        )
        store = MemoryStore()
        async with AsyncExitStack() as stack:
            registries = [
                await stack.enter_async_context(
                    Registry(store, LocalBus(broker, heartbeat_interval=0.05), limits=LIMITS)
                )
                for _ in range(3)
            ]
            rooms = [await r.acquire(NAME) for r in registries]
            for serial, (node, action) in enumerate(plan):
                edit(rooms[node], action, serial)
                await asyncio.sleep(0)  # let some frames travel between edits
            broker.drop = None
            async with asyncio.timeout(5):
                while len({repr(snapshot(room)) for room in rooms}) > 1:  # noqa: ASYNC110
                    await asyncio.sleep(0.01)
            for registry, room in zip(registries, rooms, strict=True):
                registry.release(room)

    asyncio.run(run())
