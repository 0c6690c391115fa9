"""The join gate: one database read per document for a while, shared by the joins that
arrive during it; refusals never kept; forgetting beats a read in flight."""

from __future__ import annotations

import asyncio

import pytest

from server.errors import ClassroomArchived, NotFound, ServerError
from server.join_gate import JoinGate

pytestmark = pytest.mark.anyio


class Reads:
    """A refusal read the test controls: counts calls, answers when released."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.verdicts: dict[str, ServerError | None] = {}
        self.release = asyncio.Event()
        self.started = asyncio.Event()

    async def __call__(self, document: str) -> ServerError | None:
        self.calls.append(document)
        self.started.set()
        await self.release.wait()
        return self.verdicts.get(document)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_joins_during_a_read_share_it_and_the_open_verdict_is_kept_for_the_ttl() -> None:
    reads, clock = Reads(), Clock()
    gate = JoinGate(reads, ttl=2.0, clock=clock)
    joins = [asyncio.create_task(gate.refusal("c1/board")) for _ in range(50)]
    await asyncio.wait_for(reads.started.wait(), 5)
    reads.release.set()
    assert await asyncio.gather(*joins) == [None] * 50
    assert reads.calls == ["c1/board"]
    clock.now += 1.9
    assert await gate.refusal("c1/board") is None
    assert reads.calls == ["c1/board"]
    clock.now += 0.2  # past the ttl: read again
    assert await gate.refusal("c1/board") is None
    assert reads.calls == ["c1/board", "c1/board"]


async def test_refusals_are_never_kept() -> None:
    reads = Reads()
    reads.release.set()
    reads.verdicts["c1/board"] = ClassroomArchived("archived")
    gate = JoinGate(reads)
    for _ in range(3):
        assert isinstance(await gate.refusal("c1/board"), ClassroomArchived)
    assert len(reads.calls) == 3
    reads.verdicts.clear()  # restored: the next join gets in at once
    assert await gate.refusal("c1/board") is None


async def test_forgetting_drops_the_kept_verdict_and_the_next_join_sees_the_deletion() -> None:
    reads = Reads()
    reads.release.set()
    gate = JoinGate(reads)
    for name in ("c1/board", "c1/class", "c2/board"):
        assert await gate.refusal(name) is None
    reads.verdicts["c1/board"] = NotFound("this document was deleted")
    assert await gate.refusal("c1/board") is None  # still kept: nobody said
    gate.forget(document="c1/board")
    assert isinstance(await gate.refusal("c1/board"), NotFound)
    calls = len(reads.calls)
    # A classroom archived: all its documents forgotten, other classrooms' kept.
    gate.forget(classroom="c1")
    await gate.refusal("c1/class")
    await gate.refusal("c2/board")
    assert reads.calls[calls:] == ["c1/class"]


async def test_a_verdict_read_before_a_forget_is_answered_but_not_kept() -> None:
    reads = Reads()
    gate = JoinGate(reads)
    join = asyncio.create_task(gate.refusal("c1/board"))
    await asyncio.wait_for(reads.started.wait(), 5)
    gate.forget(document="c1/board")  # a deletion committed while the read was under way
    reads.release.set()
    assert await join is None
    reads.verdicts["c1/board"] = NotFound("deleted")
    assert isinstance(await gate.refusal("c1/board"), NotFound)


async def test_a_cancelled_reader_leaves_the_waiters_to_read_themselves() -> None:
    reads = Reads()
    gate = JoinGate(reads)
    first = asyncio.create_task(gate.refusal("c1/board"))
    await asyncio.wait_for(reads.started.wait(), 5)
    waiter = asyncio.create_task(gate.refusal("c1/board"))
    await asyncio.sleep(0)  # the waiter is now waiting on the first read
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    reads.verdicts["c1/board"] = ClassroomArchived("archived")
    reads.release.set()
    # Neither cancelled with the first nor let in unread: it read for itself.
    assert isinstance(await asyncio.wait_for(waiter, 5), ClassroomArchived)
    assert reads.calls == ["c1/board", "c1/board"]


async def test_the_kept_verdicts_are_bounded() -> None:
    reads = Reads()
    reads.release.set()
    gate = JoinGate(reads, max_kept=3)
    for i in range(10):
        await gate.refusal(f"c{i}/board")
    calls = len(reads.calls)
    await gate.refusal("c9/board")  # recent: kept
    await gate.refusal("c0/board")  # oldest: dropped, read again
    assert reads.calls[calls:] == ["c0/board"]
