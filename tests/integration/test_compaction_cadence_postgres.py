"""The fold at unload, compressed snapshots and out-of-order logs on a real PostgreSQL:
the same checks as tests/collab/test_compaction_cadence.py runs on memory and SQLite."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, text

from collab.adapters.sql_store import SqlStore
from collab.compaction import COMPRESSED
from collab.logpack import BUNDLE
from collab.ports import Store
from server.db import migrate
from tests.collab.test_compaction_cadence import (
    NAME,
    test_a_failed_fold_at_unload_loses_nothing,
    test_an_unloaded_room_leaves_one_snapshot_to_load,
    test_compaction_of_a_log_out_of_dependency_order_keeps_every_update,
)

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

# Collected here again, with this module's PostgreSQL ``store``.
__all__ = [
    "test_a_failed_fold_at_unload_loses_nothing",
    "test_an_unloaded_room_leaves_one_snapshot_to_load",
    "test_compaction_of_a_log_out_of_dependency_order_keeps_every_update",
]


@pytest.fixture
def store(pg_engine: Engine) -> Store:
    migrate(pg_engine)
    return SqlStore(pg_engine)


async def test_the_snapshot_row_is_compressed(store: Store, pg_engine: Engine) -> None:
    await test_an_unloaded_room_leaves_one_snapshot_to_load(store)
    with pg_engine.connect() as conn:
        row = conn.execute(
            text("SELECT snapshot, snapshot_seq FROM collab_document WHERE name = :n"),
            {"n": NAME},
        ).one()
    assert bytes(row.snapshot).startswith(COMPRESSED)
    assert row.snapshot_seq == 20


async def test_a_bundled_log_answers_as_it_was_sent(store: Store, pg_engine: Engine) -> None:
    """Interleaved authors' saves packed in bundles (microsecond times kept exactly by
    timestamptz): entries, filters, contributions and past states as written."""
    from tests.collab.history_contract import check_packed_log

    await check_packed_log(store)
    with pg_engine.connect() as conn:
        rows = conn.execute(
            text("SELECT data FROM collab_update WHERE document = :n"), {"n": NAME}
        ).scalars()
        bundled = [bytes(r) for r in rows if bytes(r).startswith(BUNDLE)]
    assert bundled  # 240 entries, far fewer rows
