"""Log rows packed in bundles (issue 13, item 6): unpacking gives back exactly the entries
packed, and a store that bundles still loads, replays and answers history as it was sent.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import tempfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest.mock import patch

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pycrdt import Array, Doc, Map
from sqlalchemy import text

from collab import logpack
from collab.adapters import sql_store
from collab.adapters.sql_store import SqlStore
from collab.limits import Limits
from collab.logpack import BUNDLE, SEQ_SPAN, TIME_SPAN, pack, unpack, unpack_all
from collab.memory import LocalBus, MemoryStore
from collab.ports import DocumentName, HistoryEntry, Peer, StoredUpdate
from collab.protocol import Saved, SavedRequest
from collab.registry import Registry
from server.db import make_engine, migrate

from .history_contract import check_packed_log, walk
from .peers import ScriptedPeer
from .writers import Step, content, plans, play

NAME = DocumentName("c1/board")
T0 = datetime(2026, 3, 3, 9, 0, tzinfo=UTC)

# (author, microseconds since the previous entry, or None: the clock stepped back; size)
entry_steps = st.lists(
    st.tuples(
        st.sampled_from(["ada", "bo", "cy", None]),
        st.one_of(st.integers(0, 3_000_000), st.none()),
        st.integers(1, 900),
    ),
    min_size=1,
    max_size=120,
)


def _entries(steps: list[tuple[str | None, int | None, int]], seed: int) -> list[HistoryEntry]:
    rng = random.Random(seed)
    at = T0
    out = []
    for i, (author, gap, size) in enumerate(steps):
        at = at - timedelta(seconds=5) if gap is None else at + timedelta(microseconds=gap)
        # Half compressible (a stroke's repeated structure), half random (its points).
        data = bytes(rng.randrange(4) for _ in range(size // 2)) + rng.randbytes(size - size // 2)
        out.append(HistoryEntry(1000 + i, author, at, data))
    return out


@settings(max_examples=200, deadline=None)
@given(steps=entry_steps, seed=st.integers(0, 2**32), small=st.booleans())
def test_unpacking_gives_back_exactly_the_entries_packed(
    steps: list[tuple[str | None, int | None, int]], seed: int, small: bool
) -> None:
    entries = _entries(steps, seed)
    with patch.object(logpack, "MIN_BUNDLE_BYTES", 0 if small else logpack.MIN_BUNDLE_BYTES):
        rows = pack(entries)
    assert unpack_all(rows) == entries
    assert [r.seq for r in rows] == sorted(r.seq for r in rows)
    assert len({r.seq for r in rows}) == len(rows)
    for row in rows:
        held = unpack(row)
        # What queries by seq and time rely on: a row is one author's, its seq is its
        # last entry's, its time its first's, and its entries lie within the spans.
        assert row.seq == held[-1].seq
        assert row.created_at == held[0].created_at
        assert {e.author for e in held} == {row.author}
        assert held[-1].seq - held[0].seq < SEQ_SPAN
        assert all(a.created_at <= b.created_at for a, b in itertools.pairwise(held))
        assert held[-1].created_at - held[0].created_at <= TIME_SPAN
        if len(held) > 1:
            assert row.data.startswith(BUNDLE)
            assert len(row.data) < sum(len(e.data) for e in held)
        else:
            assert row == held[0]


def test_a_save_of_ink_is_one_deflated_row_per_author() -> None:
    rng = random.Random(7)
    entries = []
    for i in range(400):
        # A stroke chunk as the bench's writers send it: header bytes that repeat, then
        # small random point deltas (zigzag varints).
        data = (
            b"\x01\x01\xaa\x98\xb6\xac\x0a"
            + bytes([i % 128])
            + bytes(rng.randrange(16) for _ in range(30))
        )
        entries.append(
            HistoryEntry(i + 1, ["ada", "bo"][i % 2], T0 + timedelta(milliseconds=i), data)
        )
    rows = pack(entries)
    assert [r.author for r in rows] == ["ada", "bo"]
    assert all(r.data.startswith(BUNDLE) for r in rows)
    assert sum(len(r.data) for r in rows) < 0.8 * sum(len(e.data) for e in entries)
    assert unpack_all(rows) == entries


def test_small_saves_stay_one_plain_row_per_update() -> None:
    entries = [HistoryEntry(i + 1, "ada", T0, b"\x01\x01\x05\x00" + bytes(20)) for i in range(5)]
    assert pack(entries) == entries  # below MIN_BUNDLE_BYTES: as rows were always written


def test_a_corrupt_bundle_is_a_clear_error() -> None:
    entries = [HistoryEntry(i + 1, "ada", T0, bytes(600)) for i in range(4)]
    (row,) = pack(entries)
    for data in (row.data[:-4] + b"oops", BUNDLE + zlib.compress(b"\x05\x00\x00")):
        with pytest.raises(ValueError, match="corrupt log bundle at seq 4"):
            unpack(HistoryEntry(row.seq, row.author, row.created_at, data))


# -- through a real store ---------------------------------------------------------------


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[tuple[SqlStore, Any]]:
    engine = make_engine(f"sqlite:///{tmp_path / 'l.db'}")
    migrate(engine)
    try:
        yield SqlStore(engine), engine
    finally:
        engine.dispose()


def _row_count(engine: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM collab_update")).scalar() or 0)


@pytest.mark.anyio
@pytest.mark.parametrize("kind", ["memory", "sqlite", "sqlite-small-spans"])
async def test_a_packed_log_answers_as_it_was_sent(
    kind: str, sqlite_store: tuple[SqlStore, Any]
) -> None:
    store, engine = sqlite_store
    if kind == "memory":
        await check_packed_log(MemoryStore())
        return
    if kind == "sqlite":
        await check_packed_log(store)
        assert _row_count(engine) < 60  # of 240 entries: it did bundle
        return
    # Bundles of a few entries each, interleaved: history pages and past states must look
    # past the rows that end after them for entries that belong before.
    with (
        patch.object(logpack, "SEQ_SPAN", 7),
        patch.object(sql_store, "SEQ_SPAN", 7),
        patch.object(logpack, "MIN_BUNDLE_BYTES", 0),
    ):
        await check_packed_log(store)
    assert 40 < _row_count(engine) < 240


@pytest.mark.anyio
async def test_history_looks_past_rows_that_end_later(
    sqlite_store: tuple[SqlStore, Any],
) -> None:
    """One save: A, B, B, C, C, A. Rows end at 3 (B), 5 (C) and 6 (A): the first entry is
    in the last row, which a page that stopped at the rows it needed would miss."""
    store, engine = sqlite_store
    authors = ["a", "b", "b", "c", "c", "a"]
    docs: dict[str, Doc[Any]] = {who: Doc() for who in authors}
    sent = []
    for i, who in enumerate(authors):
        made: list[bytes] = []
        sub = docs[who].observe(lambda e, made=made: made.append(e.update))
        docs[who].get(who, type=Array).append(str(i) * 600)
        docs[who].unobserve(sub)
        sent.append(StoredUpdate(made[0], who, T0 + timedelta(milliseconds=i)))
    await store.append({NAME: sent})
    assert _row_count(engine) == 3
    for limit in (1, 2, 5):
        assert [e.seq for e in await walk(store, limit)] == [1, 2, 3, 4, 5, 6]
    assert [e.seq for e in await walk(store, 1, author="a")] == [1, 6]
    assert [e.seq for e in await walk(store, 1, since=sent[1].created_at)] == [2, 3, 4, 5, 6]
    for k in range(6):
        past = await store.state_at(NAME, sent[k].created_at)
        assert past.seq == k + 1
    totals = {c.author: (c.updates, c.bytes) for c in await store.contributions(NAME)}
    assert totals == {who: (2, sum(len(u.data) for u in sent if u.author == who)) for who in "abc"}


# Three writers that sync now and then; their texts repeated, as ink's headers are, so
# that small saves bundle too.
doc_steps = plans(max_text=12, max_steps=60)


def _updates(plan: list[Step]) -> list[tuple[int, bytes]]:
    return play([(w, o, n, s * 6) for w, o, n, s in plan], lambda _, s: s)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    plan=doc_steps,
    cuts=st.lists(st.integers(0, 80), max_size=5),
    fold=st.booleans(),
    span=st.sampled_from([2, 5, SEQ_SPAN]),
    seconds=st.sampled_from([0.3, TIME_SPAN.total_seconds()]),
)
def test_what_sqlite_loads_is_what_was_sent(
    tmp_path: Path,
    plan: list[tuple[int, str, int, str]],
    cuts: list[int],
    fold: bool,
    span: int,
    seconds: float,
) -> None:
    """Random multi-writer updates appended in random saves (every group bundled, with
    the real spans or small ones so that history pages and past states cross many rows),
    with or without compactions between them: the store loads the same document, and
    history (paged, filtered), contributions and every past state are the memory store's."""
    updates = _updates(plan)
    engine = make_engine(f"sqlite:///{tempfile.mkdtemp(dir=tmp_path)}/p.db")
    migrate(engine)
    sent = [
        StoredUpdate(u, ["ada", "bo", None][who], T0 + timedelta(microseconds=137_731 * i))
        for i, (who, u) in enumerate(updates)
    ]

    async def run() -> None:
        store, reference = SqlStore(engine), MemoryStore()
        at = 0
        for cut in sorted({min(c, len(sent)) for c in cuts} | {len(sent)}):
            if cut > at:
                for s in (store, reference):
                    await s.append({NAME: sent[at:cut]})
                at = cut
            if fold:
                await store.compact(NAME)
        loaded = await store.load(NAME)
        stored = [loaded.snapshot or b"\x00\x00", *loaded.tail]
        assert content(stored, together=True) == content([s.data for s in sent], together=True)
        if not fold:
            assert list(loaded.tail) == [s.data for s in sent]
            assert list(loaded.tail_authors) == [s.author for s in sent]
        mine = await store.history(NAME, limit=1000)
        theirs = await reference.history(NAME, limit=1000)
        assert mine == theirs
        if not sent:
            return
        quarter, three = sent[len(sent) // 4].created_at, sent[3 * len(sent) // 4].created_at
        for limit, filters in (
            (1, {}),
            (3, {"author": "bo"}),
            (2, {"since": quarter, "until": three}),
            (4, {"author": None, "since": quarter}),
        ):
            assert await walk(store, limit, **filters) == await walk(reference, limit, **filters)
        assert await store.contributions(NAME) == await reference.contributions(NAME)
        for k in range(0, len(sent), max(1, len(sent) // 6)):
            at_k = sent[k].created_at + timedelta(microseconds=1)
            assert await store.state_at(NAME, at_k) == await reference.state_at(NAME, at_k)

    try:
        with (
            patch.object(logpack, "MIN_BUNDLE_BYTES", 0),
            patch.object(logpack, "SEQ_SPAN", span),
            patch.object(sql_store, "SEQ_SPAN", span),
            patch.object(logpack, "TIME_SPAN", timedelta(seconds=seconds)),
            patch.object(sql_store, "TIME_SPAN", timedelta(seconds=seconds)),
        ):
            asyncio.run(run())
    finally:
        engine.dispose()


def _put(key: str, value: str) -> Callable[[Doc[Any]], None]:
    def edit(doc: Doc[Any]) -> None:
        doc.get("shapes", type=Map)[key] = value

    return edit


@pytest.mark.anyio
async def test_saved_goes_out_after_the_commit_that_holds_a_bundled_save(
    sqlite_store: tuple[SqlStore, Any],
) -> None:
    """Many edits of one client in one save are one bundled row; the acknowledgement comes
    only once that row is committed: a second connection to the database then sees every
    edit."""
    store, engine = sqlite_store
    committed: list[int] = []

    class Watching(SqlStore):
        async def append(self, batches: Any) -> None:
            await super().append(batches)
            committed.append(_row_count(engine))

    watching = Watching(engine)
    async with AsyncExitStack() as stack:
        registry = await stack.enter_async_context(
            Registry(watching, LocalBus(), limits=Limits(save_debounce=0.2, save_max_delay=2.0))
        )
        peer = await ScriptedPeer(registry, NAME, Peer("tutor-1", "Ada", "tutor")).start(stack)
        for i in range(40):
            await peer.edit(_put(f"k{i}", "x" * 80))
        await peer.conn.send(bytes(SavedRequest(3)))
        await peer.until(lambda: any(isinstance(m, Saved) for m in peer.received), 5)
        # At the moment the acknowledgement arrived, a fresh reader sees every edit.
        loaded = await SqlStore(engine).load(NAME)
        doc = loaded.to_doc()
        assert len(doc.get("shapes", type=Map)) == 40
        assert committed
        assert _row_count(engine) < 40  # bundled
        entries = (await store.history(NAME, limit=1000)).entries
        assert len(entries) == 40
        assert {e.author for e in entries} == {"tutor-1"}
