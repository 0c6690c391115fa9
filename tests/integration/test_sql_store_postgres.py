"""The SQL store on a real PostgreSQL, with the Alembic migrations applied."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from pycrdt import Array, Doc
from sqlalchemy import Engine, inspect

from collab.adapters.sql_store import SqlStore
from collab.ports import DocumentName, StoredUpdate
from server.db import migrate

pytestmark = [pytest.mark.integration, pytest.mark.anyio]
NAME = DocumentName("c1/board")


def updates(n: int, start: int = 0) -> tuple[list[bytes], Doc[Any]]:
    doc: Doc[Any] = Doc()
    out: list[bytes] = []
    doc.observe(lambda e: out.append(e.update))
    arr = doc.get("a", type=Array)
    for i in range(start, start + n):
        arr.append(i)
    return out, doc


async def content(store: SqlStore) -> list[Any]:
    loaded = await store.load(NAME)
    doc = loaded.to_doc()
    return list(doc.get("a", type=Array).to_py())


def stored(data: list[bytes], author: str) -> list[StoredUpdate]:
    now = datetime.now(UTC)
    return [StoredUpdate(u, author, now) for u in data]


async def test_migrations_create_the_log_tables(pg_engine: Engine) -> None:
    migrate(pg_engine)
    migrate(pg_engine)  # idempotent
    tables = set(inspect(pg_engine).get_table_names())
    assert {"collab_document", "collab_update", "alembic_version"} <= tables


async def test_append_compact_load_and_history(pg_engine: Engine) -> None:
    migrate(pg_engine)
    store = SqlStore(pg_engine)
    assert (await store.load(NAME)).snapshot is None
    data, _ = updates(30)
    await store.append({NAME: stored(data[:20], "tutor-1")})
    await store.compact(NAME)
    await store.append({NAME: stored(data[20:], "student-2")})
    loaded = await store.load(NAME)
    assert loaded.snapshot is not None
    assert len(loaded.tail) == 10
    assert await content(store) == list(range(30))
    history = (await store.history(NAME, limit=1000)).entries
    assert [h.author for h in history] == ["tutor-1"] * 20 + ["student-2"] * 10
    assert all(h.created_at.tzinfo is not None for h in history)


async def test_concurrent_appends_from_two_nodes_lose_nothing(pg_engine: Engine) -> None:
    """Two stores on separate connections stand in for two nodes writing one document."""
    migrate(pg_engine)
    node_a, node_b = SqlStore(pg_engine), SqlStore(pg_engine)
    a_updates, _ = updates(40, 0)
    b_updates, _ = updates(40, 1000)

    async def write(store: SqlStore, data: list[bytes], who: str) -> None:
        for i in range(0, len(data), 4):
            await store.append({NAME: stored(data[i : i + 4], who)})
            if i % 16 == 0:
                await store.compact(NAME)

    await asyncio.gather(write(node_a, a_updates, "a"), write(node_b, b_updates, "b"))
    items = await content(node_a)
    assert sorted(items) == list(range(40)) + list(range(1000, 1040))
    history = (await node_b.history(NAME, limit=1000)).entries
    assert len(history) == 80


async def test_history_on_postgres(pg_engine: Engine) -> None:
    from tests.collab.history_contract import check_history

    migrate(pg_engine)
    await check_history(SqlStore(pg_engine))
    indexes = {i["name"] for i in inspect(pg_engine).get_indexes("collab_update")}
    assert {"ix_collab_update_document_created", "ix_collab_update_document_author"} <= indexes


async def test_history_bad_input_on_postgres(pg_engine: Engine) -> None:
    from tests.collab.history_contract import check_bad_input

    migrate(pg_engine)
    await check_bad_input(SqlStore(pg_engine))
