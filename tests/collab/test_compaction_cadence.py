"""Compaction's cadence, compressed snapshots and the fold at unload (issue 13, item 6).

The fold must give the content of its parts whatever order the log holds them in (a part
waiting for a later commit included); the cadence must keep the snapshots written a
fraction of the log; a room that unloads leaves one snapshot to load, on SQLite as in
memory, and a failed fold loses nothing.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pycrdt import Array, Doc, Map, Text, merge_updates
from sqlalchemy import update

from collab.adapters.sql_store import DocumentRow, SqlStore
from collab.compaction import COMPRESSED, fold, pack_snapshot, unpack_snapshot
from collab.errors import InvalidUpdate
from collab.journal import Journal
from collab.limits import Limits
from collab.memory import LocalBus, MemoryStore
from collab.ports import DocumentName, Peer, Store, StoredUpdate
from collab.registry import Registry
from collab.updates import parse, writers
from server.db import make_engine, migrate

from .peers import ScriptedPeer, eventually, push
from .writers import Step, content, plans, play

NAME = DocumentName("c1/board")
TUTOR = Peer("tutor-1", "Ada", "tutor")

steps = plans(max_text=3, max_steps=30)


def _history(plan: list[Step]) -> list[bytes]:
    return [u for _, u in play(plan, lambda n, _: n)]


@settings(max_examples=150, deadline=None)
@given(plan=steps, data=st.data())
def test_a_fold_in_any_log_order_keeps_every_part(
    plan: list[tuple[int, str, int, str]], data: st.DataObject
) -> None:
    """Folding any subset, in any order (parts waiting on updates outside it included),
    then applying the rest gives the content of the whole log."""
    updates = _history(plan)
    order = data.draw(st.permutations(updates))
    cut = data.draw(st.integers(0, len(order)))
    split = data.draw(st.integers(0, cut))
    snapshot = fold(None, order[:split]) if split else None
    folded = fold(snapshot, order[split:cut])
    # The rest arrives as one merged update: applying out-of-order updates one at a time
    # can drop an item in pycrdt 0.14 (yrs' pending structs), whatever the fold did.
    assert content([merge_updates(folded, *order[cut:])], together=False) == content(
        updates, together=False
    )


@settings(max_examples=100, deadline=None)
@given(plan=steps, data=st.data())
def test_the_writers_of_an_update_read_from_its_header_match_a_full_parse(
    plan: list[tuple[int, str, int, str]], data: st.DataObject
) -> None:
    """A load reads who wrote each tail entry from its header (one client) or a parse."""
    updates = _history(plan)
    some = data.draw(st.lists(st.sampled_from(updates), max_size=4)) if updates else []
    for u in [*updates, merge_updates(*some)] if some else updates:
        assert writers(u) == {client for client, _, _ in parse(u, values=False).groups}
    with pytest.raises(InvalidUpdate):
        writers(b"\x01\x05")


def test_a_fold_keeps_what_out_of_order_application_would_drop() -> None:
    """pycrdt 0.14 applying these one at a time loses the fourth element (the document's
    clock stops short of it); the fold sees the part is not in, and merges it whole."""
    doc: Doc[Any] = Doc()
    log: list[bytes] = []
    doc.observe(lambda event: log.append(event.update))
    array = doc.get("a", type=Array)
    for _ in range(4):
        array.append(0)
    array.insert(0, "a")
    shuffled = [log[i] for i in (0, 1, 3, 4, 2)]
    assert content(shuffled, together=False)["a"] == ["a", 0, 0, 0]  # the library's loss
    assert content([fold(None, shuffled)], together=False)["a"] == ["a", 0, 0, 0, 0]


def test_a_fold_is_smaller_than_merging_and_stores_compressed() -> None:
    doc: Doc[Any] = Doc()
    log: list[bytes] = []
    doc.observe(lambda event: log.append(event.update))
    shapes = doc.get("shapes", type=Map)
    for i in range(300):
        if i % 20 == 0:
            shapes[f"s{i // 20}"] = Array()
        shapes[f"s{i // 20}"].append(bytes([i % 7, 3, 1, 4]) * 3)
    folded = fold(None, log)
    assert len(folded) < len(merge_updates(*log))
    assert content([folded], together=False) == content(log, together=False)
    loaded: Doc[Any] = Doc()
    loaded.apply_update(folded)
    assert loaded.get("shapes", type=Map).to_py() == shapes.to_py()
    stored = pack_snapshot(folded)
    assert stored.startswith(COMPRESSED)
    assert len(stored) < len(folded)
    assert unpack_snapshot(stored) == folded
    # A plain snapshot (written before compression) reads as it is.
    assert unpack_snapshot(folded) == folded
    assert not folded.startswith(COMPRESSED)


def test_a_corrupt_compressed_snapshot_is_a_clear_error() -> None:
    stored = pack_snapshot(b"\x00\x00" * 100)
    with pytest.raises(ValueError, match="corrupt compressed snapshot"):
        unpack_snapshot(stored[:-4] + b"oops")
    with pytest.raises(ValueError, match="corrupt compressed snapshot"):
        unpack_snapshot(COMPRESSED + zlib.compress(b"x")[:3])


def test_the_cadence_is_geometric_in_the_snapshot_size_with_a_cap_on_entries() -> None:
    limits = Limits(compact_after_bytes=1000, compact_growth=2.0, compact_after_updates=50)
    journal = Journal(NAME, on_dirty=lambda _j: None, snapshot_bytes=10_000)
    assert not journal.needs_compaction(limits)  # nothing to fold
    journal.tail_updates, journal.tail_bytes = 10, 19_999
    assert not journal.needs_compaction(limits)
    journal.tail_bytes = 20_000
    assert journal.needs_compaction(limits)
    journal.tail_updates, journal.tail_bytes = 50, 100  # many small entries
    assert journal.needs_compaction(limits)
    small = Journal(NAME, on_dirty=lambda _j: None, snapshot_bytes=10, tail_updates=1)
    small.tail_bytes = 999
    assert not small.needs_compaction(limits)  # below the floor
    small.tail_bytes = 1000
    assert small.needs_compaction(limits)


def test_snapshots_written_stay_a_fraction_of_the_log() -> None:
    """A long lesson of equal updates whose snapshot is 40% of the data: the snapshots the
    cadence writes sum to about (1 / growth + 0.4) of the log, not a multiple of it."""
    limits = Limits(compact_after_bytes=64_000, compact_growth=2.0, compact_after_updates=10**9)
    journal = Journal(NAME, on_dirty=lambda _j: None)
    data = written = 0
    for _ in range(200_000):
        data += 50
        journal.tail_updates += 1
        journal.tail_bytes += 50
        if journal.needs_compaction(limits):
            snapshot = int(data * 0.4)
            written += snapshot
            journal.compacted(snapshot)
    assert written < (1 / 2.0 + 0.4) * data * 1.05
    assert written > 0.4 * data * 0.9  # it did compact


# -- the fold at unload, on the memory store and real SQLite -----------------------------


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "memory":
        yield MemoryStore()
        return
    engine = make_engine(f"sqlite:///{tmp_path / 'c.db'}")
    migrate(engine)
    try:
        yield SqlStore(engine)
    finally:
        engine.dispose()


class FoldCounting:
    """Counts compactions a store is asked for (wraps either store)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.compactions = 0
        self.fail = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    async def compact(self, name: DocumentName) -> int:
        if self.fail:
            raise OSError("store unavailable for compaction")
        size = await self.store.compact(name)
        self.compactions += 1
        return size


def _limits(**kw: Any) -> Limits:
    return Limits(
        save_debounce=0.005,
        save_max_delay=0.02,
        unload_grace=0.1,
        compact_after_updates=10_000,
        compact_after_bytes=10**9,
        fold_on_unload_updates=8,
        **kw,
    )


@pytest.mark.anyio
async def test_an_unloaded_room_leaves_one_snapshot_to_load(store: Store) -> None:
    counting = FoldCounting(store)
    async with Registry(counting, LocalBus(), limits=_limits()) as registry:
        async with AsyncExitStack() as stack:
            peer = await ScriptedPeer(registry, NAME, TUTOR).start(stack)
            for i in range(20):
                await peer.edit(push(i))
            await eventually(lambda: registry.rooms[NAME].journal.stored == 20)
            assert counting.compactions == 0  # far from the cadence's thresholds
        await eventually(lambda: NAME not in registry.rooms and counting.compactions == 1)
        loaded = await store.load(NAME)
        assert loaded.tail == []
        assert loaded.snapshot is not None
        assert loaded.to_doc().get("a", type=Array).to_py() == list(range(20))
        # Written after the fold: on top of the snapshot, in the tail.
        async with AsyncExitStack() as stack:
            again = await ScriptedPeer(registry, NAME, TUTOR).start(stack)
            assert again.doc.get("a", type=Array).to_py() == list(range(20))
            await again.edit(push(20))
            await eventually(lambda: registry.rooms[NAME].journal.stored == 1)
    loaded = await store.load(NAME)
    assert len(loaded.tail) == 1  # below the threshold: left as it is
    assert loaded.to_doc().get("a", type=Array).to_py() == list(range(21))
    history = await store.history(NAME, limit=100)
    assert len(history.entries) == 21  # the log itself is kept


@pytest.mark.anyio
async def test_a_failed_fold_at_unload_loses_nothing(store: Store) -> None:
    counting = FoldCounting(store)
    counting.fail = True
    async with Registry(counting, LocalBus(), limits=_limits()) as registry:
        async with AsyncExitStack() as stack:
            peer = await ScriptedPeer(registry, NAME, TUTOR).start(stack)
            for i in range(12):
                await peer.edit(push(i))
            await eventually(lambda: registry.rooms[NAME].journal.stored == 12)
        await eventually(lambda: NAME not in registry.rooms)
        async with AsyncExitStack() as stack:
            again = await ScriptedPeer(registry, NAME, TUTOR).start(stack)
            assert again.doc.get("a", type=Array).to_py() == list(range(12))
    loaded = await store.load(NAME)
    assert len(loaded.tail) == 12


@pytest.mark.anyio
async def test_plain_snapshots_written_before_compression_still_load(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    migrate(engine)
    try:
        store = SqlStore(engine)
        doc: Doc[Any] = Doc()
        log: list[bytes] = []
        doc.observe(lambda event: log.append(event.update))
        for i in range(30):
            doc.get("a", type=Array).append(i)
        now = datetime.now(UTC)
        await store.append({NAME: [StoredUpdate(u, "u", now) for u in log[:20]]})
        # As an older node left it: a plain merged snapshot covering the first 20.
        with engine.begin() as conn:
            conn.execute(
                update(DocumentRow.__table__)  # type: ignore[attr-defined]
                .where(DocumentRow.__table__.c.name == NAME)  # type: ignore[attr-defined]
                .values(snapshot=fold(None, log[:20]), snapshot_seq=20)
            )
        await store.append({NAME: [StoredUpdate(u, "u", now) for u in log[20:]]})
        loaded = await store.load(NAME)
        assert len(loaded.tail) == 10
        assert loaded.to_doc().get("a", type=Array).to_py() == list(range(30))
        await store.compact(NAME)
        with engine.connect() as conn:
            stored = conn.execute(
                DocumentRow.__table__.select()  # type: ignore[attr-defined]
            ).one()
        assert stored.snapshot.startswith(COMPRESSED)
        assert stored.snapshot_seq == 30
        again = await store.load(NAME)
        assert again.tail == []
        assert again.to_doc().get("a", type=Array).to_py() == list(range(30))
        past = await store.state_at(NAME, datetime.now(UTC))
        assert content([past.update], together=False)["a"] == list(range(30))
    finally:
        engine.dispose()


@pytest.mark.anyio
async def test_compaction_of_a_log_out_of_dependency_order_keeps_every_update(
    store: Store,
) -> None:
    """Another node's update can commit after one that builds on it: the fold covering
    the first must keep it, waiting, rather than drop it."""
    a: Doc[Any] = Doc()
    log: list[bytes] = []
    a.observe(lambda event: log.append(event.update))
    text = a.get("t", type=Text)
    text += "hello"
    text += " world"
    del text[0:2]
    now = datetime.now(UTC)
    # The edit on top of "hello" commits first; "hello" itself after the fold.
    await store.append({NAME: [StoredUpdate(log[1], "b", now), StoredUpdate(log[2], "b", now)]})
    await store.compact(NAME)
    await store.append({NAME: [StoredUpdate(log[0], "a", now)]})
    loaded = await store.load(NAME)
    assert str(loaded.to_doc().get("t", type=Text)) == "llo world"
    await store.compact(NAME)
    folded = await store.load(NAME)
    assert folded.tail == []
    assert str(folded.to_doc().get("t", type=Text)) == "llo world"


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(plan=steps, cuts=st.lists(st.integers(0, 40), max_size=4))
def test_compacting_sqlite_at_any_points_keeps_content(
    tmp_path: Path, plan: list[tuple[int, str, int, str]], cuts: list[int]
) -> None:
    import asyncio

    updates = _history(plan)
    engine = make_engine(f"sqlite:///{tmp_path / f'p{len(updates)}-{len(cuts)}.db'}")
    migrate(engine)
    name = DocumentName(f"c1/p{abs(hash((tuple(updates), tuple(cuts))))}")

    async def run() -> dict[str, Any]:
        store = SqlStore(engine)
        now = datetime.now(UTC)
        at = 0
        for cut in sorted({min(c, len(updates)) for c in cuts} | {len(updates)}):
            if cut > at:
                await store.append({name: [StoredUpdate(u, "w", now) for u in updates[at:cut]]})
                at = cut
            await store.compact(name)
        loaded = await store.load(name)
        return content([loaded.snapshot or b"\x00\x00", *loaded.tail], together=False)

    try:
        assert asyncio.run(run()) == content(updates, together=False)
    finally:
        engine.dispose()
