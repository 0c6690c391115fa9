"""History on the :class:`~collab.ports.Store` port: the memory store and SQLite."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from collab.adapters.sql_store import SqlStore
from collab.memory import MemoryStore
from collab.ports import Store
from server.db import make_engine, migrate

from .history_contract import check_bad_input, check_history

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "memory":
        yield MemoryStore()
        return
    engine = make_engine(f"sqlite:///{tmp_path / 'h.db'}")
    migrate(engine)
    try:
        yield SqlStore(engine)
    finally:
        engine.dispose()


async def test_history_pages_filters_contributions_and_past_states(store: Store) -> None:
    await check_history(store)


async def test_bad_limits_and_time_zones(store: Store) -> None:
    await check_bad_input(store)
