"""Nodes starting together migrate one fresh PostgreSQL schema without racing."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import Engine, create_engine, inspect, text

from server.db import migrate

pytestmark = pytest.mark.integration


def test_concurrent_migrations_take_turns(pg_engine: Engine) -> None:
    with pg_engine.connect() as conn:
        schema = conn.execute(text("SHOW search_path")).scalar()
    # One engine per "node", as separate processes would have.
    engines = [
        create_engine(pg_engine.url, connect_args={"options": f"-csearch_path={schema}"})
        for _ in range(3)
    ]
    try:
        with ThreadPoolExecutor(3) as pool:
            for future in [pool.submit(migrate, engine) for engine in engines]:
                future.result(timeout=60)  # without the lock, two CREATE TABLEs collide
    finally:
        for engine in engines:
            engine.dispose()
    tables = set(inspect(pg_engine).get_table_names())
    assert {"collab_document", "collab_update", "alembic_version"} <= tables
