"""Compaction racing appends from two nodes on one PostgreSQL never loses an update.

Two stores on two engines (two nodes) append and compact the same document at once, in
any interleaving hypothesis picks; each store call runs in its own thread, so the
transactions really overlap. Afterwards snapshot + tail holds every appended update.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Coroutine, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pycrdt import Array, Doc
from sqlalchemy import Engine, create_engine, text

from collab.adapters.sql_store import SqlStore
from collab.ports import DocumentName, StoredUpdate
from server.db import migrate

pytestmark = pytest.mark.integration

Op = tuple[int, str, int]  # (node, "append" | "compact", how many updates)


@pytest.fixture
def second_engine(pg_engine: Engine) -> Iterator[Engine]:
    """Another engine (another node's pool) on the same throwaway schema."""
    migrate(pg_engine)
    with pg_engine.connect() as conn:
        schema = conn.execute(text("SHOW search_path")).scalar()
    other = create_engine(
        pg_engine.url, connect_args={"options": f"-csearch_path={schema}"}, pool_size=4
    )
    try:
        yield other
    finally:
        other.dispose()


class Writer:
    """One node's client: each append is one more value pushed on the shared array."""

    def __init__(self, node: int) -> None:
        self.doc: Doc[Any] = Doc()
        self.node = node
        self.count = 0

    def updates(self, n: int) -> list[bytes]:
        out: list[bytes] = []
        sub = self.doc.observe(lambda e: out.append(e.update))
        array = self.doc.get("a", type=Array)
        for _ in range(n):
            array.append(f"{self.node}-{self.count}")
            self.count += 1
        self.doc.unobserve(sub)
        return out


ops = st.lists(
    st.tuples(st.integers(0, 1), st.sampled_from(["append", "compact"]), st.integers(1, 4)),
    min_size=2,
    max_size=12,
)


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(plan=ops)
def test_compaction_racing_appends_from_two_nodes_never_loses_an_update(
    pg_engine: Engine, second_engine: Engine, plan: list[Op]
) -> None:
    stores = [SqlStore(pg_engine), SqlStore(second_engine)]
    name = DocumentName(f"c1/race-{secrets.token_hex(4)}")
    writers = [Writer(0), Writer(1)]

    async def run() -> list[Any]:
        now = datetime.now(UTC)
        calls: list[Coroutine[Any, Any, object]] = []
        for node, kind, n in plan:
            store = stores[node]
            if kind == "compact":
                calls.append(store.compact(name))
            else:
                batch = [StoredUpdate(u, f"n{node}", now) for u in writers[node].updates(n)]
                calls.append(store.append({name: batch}))
        # All at once: appends and compactions of both nodes overlap in their threads.
        await asyncio.gather(*calls)
        await stores[0].compact(name)
        loaded = await stores[1].load(name)
        return list(loaded.to_doc().get("a", type=Array).to_py())

    content = asyncio.run(run())
    expected = {f"{w.node}-{i}" for w in writers for i in range(w.count)}
    assert set(content) == expected
    assert len(content) == len(expected)
