"""Properties: compaction never changes content; random interleavings converge."""

from __future__ import annotations

import asyncio
import functools
import tempfile
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pycrdt import Array, Doc, Map, Text

from collab.compaction import fold
from collab.limits import Limits
from collab.memory import LocalBus, MemoryStore
from collab.ports import DocumentName, Peer, StoredUpdate
from collab.registry import Registry

from .peers import ScriptedPeer, eventually, state_vector

NAME = DocumentName("c/board")

# One op: (client index, kind, a number, a short string)
ops = st.lists(
    st.tuples(
        st.integers(0, 2),
        st.sampled_from(["map", "push", "insert", "delete", "text", "untext"]),
        st.integers(0, 1000),
        st.text(alphabet="abcxyz", min_size=1, max_size=4),
    ),
    min_size=1,
    max_size=40,
)


def apply_op(doc: Doc[Any], kind: str, n: int, s: str) -> None:
    m, a, t = doc.get("m", type=Map), doc.get("a", type=Array), doc.get("t", type=Text)
    if kind == "map":
        m[s] = n
    elif kind == "push":
        a.append(n)
    elif kind == "insert":
        a.insert(n % (len(a) + 1), s)
    elif kind == "delete" and len(a):
        del a[n % len(a)]
    elif kind == "text":
        t.insert(n % (len(t) + 1), s)
    elif kind == "untext" and len(t):
        i = n % len(t)
        del t[i : i + 1]


def _op(doc: Doc[Any], *, kind: str, n: int, s: str) -> None:
    apply_op(doc, kind, n, s)


def content(doc: Doc[Any]) -> dict[str, Any]:
    return {
        "m": doc.get("m", type=Map).to_py(),
        "a": doc.get("a", type=Array).to_py(),
        "t": str(doc.get("t", type=Text)),
    }


def updates_from(script: list[tuple[int, str, int, str]]) -> tuple[list[bytes], Doc[Any]]:
    """Three editors, each seeing the others' updates only sometimes: concurrent edits."""
    docs: list[Doc[Any]] = [Doc() for _ in range(3)]
    log: list[bytes] = []
    applying = [False, False, False]

    def record(i: int, update: bytes) -> None:
        if not applying[i]:
            log.append(update)

    for i, doc in enumerate(docs):
        doc.observe(lambda e, i=i: record(i, e.update))
    seen = [0, 0, 0]
    for who, kind, n, s in script:
        if n % 3 == 0:  # catch up on what the others wrote
            applying[who] = True
            for update in log[seen[who] :]:
                docs[who].apply_update(update)
            applying[who] = False
            seen[who] = len(log)
        apply_op(docs[who], kind, n, s)
    expected: Doc[Any] = Doc()
    for update in log:
        expected.apply_update(update)
    return log, expected


@given(ops, st.lists(st.integers(0, 40), max_size=5))
@settings(max_examples=60, deadline=None)
def test_fold_at_random_points_never_changes_content(
    script: list[tuple[int, str, int, str]], cuts: list[int]
) -> None:
    log, expected = updates_from(script)
    snapshot: bytes | None = None
    done = 0
    for cut in sorted(c % (len(log) + 1) for c in cuts):
        snapshot = fold(snapshot, log[done:cut])
        done = cut
    loaded: Doc[Any] = Doc()
    if snapshot is not None:
        loaded.apply_update(snapshot)
    for update in log[done:]:
        loaded.apply_update(update)
    assert content(loaded) == content(expected)


@given(ops, st.lists(st.integers(0, 40), max_size=4))
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_sql_store_compaction_at_random_points_loads_back_equal(
    script: list[tuple[int, str, int, str]], cuts: list[int]
) -> None:
    from collab.adapters.sql_store import SqlStore
    from server.db import make_engine, migrate

    log, expected = updates_from(script)
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'p.db'}")
        migrate(engine)
        store = SqlStore(engine)

        async def run() -> Doc[Any]:
            done = 0
            for cut in [*sorted(c % (len(log) + 1) for c in cuts), len(log)]:
                now = datetime.now(UTC)
                await store.append({NAME: [StoredUpdate(u, "u", now) for u in log[done:cut]]})
                done = cut
                await store.compact(NAME)
            loaded = await store.load(NAME)
            doc = loaded.to_doc()
            assert len((await store.history(NAME, limit=1000)).entries) == len(log)
            return doc

        try:
            assert content(asyncio.run(run())) == content(expected)
        finally:
            engine.dispose()


@given(ops, st.lists(st.booleans(), min_size=40, max_size=40))
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_random_interleavings_through_a_room_converge(
    script: list[tuple[int, str, int, str]], yields: list[bool]
) -> None:
    async def run() -> None:
        limits = Limits(save_debounce=0.001, save_max_delay=0.005)
        store = MemoryStore()
        async with (
            Registry(store, LocalBus(), limits=limits) as registry,
            AsyncExitStack() as stack,
        ):
            peers = [
                await ScriptedPeer(registry, NAME, Peer(f"u{i}")).start(stack) for i in range(3)
            ]
            for step, (who, kind, n, s) in enumerate(script):
                await peers[who].edit(functools.partial(_op, kind=kind, n=n, s=s))
                if yields[step]:
                    await asyncio.sleep(0)
            room = registry.rooms[NAME]

            # Equal state vectors are not enough: deletions do not move them, and a delete
            # can still be on its way after the insert it removes has arrived.
            await eventually(
                lambda: all(
                    state_vector(p.doc) == state_vector(room.doc)
                    and content(p.doc) == content(room.doc)
                    for p in peers
                ),
                5,
            )
            expected = content(room.doc)
            assert all(content(p.doc) == expected for p in peers)
        # And what was journaled loads back to the same content.
        loaded = await store.load(NAME)
        doc: Doc[Any] = Doc()
        for update in loaded.tail:
            doc.apply_update(update)
        assert content(doc) == expected

    asyncio.run(run())
