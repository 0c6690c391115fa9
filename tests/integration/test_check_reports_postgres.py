"""``/check`` reports on PostgreSQL: the migration makes the table, reports round-trip,
and the table stays capped."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import Engine

from server.check_reports import CheckReports, judge
from server.db import migrate

pytestmark = pytest.mark.integration


def test_reports_round_trip_and_the_table_stays_capped(pg_engine: Engine) -> None:
    migrate(pg_engine)
    store = CheckReports(pg_engine, max_rows=3)
    body = {
        "verdict": "audio only",
        "candidateTypes": ["host", "relay/tls"],
        "media": {"ok": False},
    }
    judged = judge(json.dumps(body).encode())
    for i in range(5):
        store.add(
            judged,
            classroom="c1" if i % 2 == 0 else "c2",
            user_id=f"u{i}",
            role="student",
            user_agent="Mozilla/5.0",
            address="203.0.113.7",
        )
    everything = store.recent(limit=10)
    assert [r["userId"] for r in everything] == ["u4", "u3", "u2"]
    [first, *_] = store.recent(classroom="c1")
    assert first["userId"] == "u4"
    assert first["candidateTypes"] == ["host", "relay/tls"]
    assert first["report"] == body
    assert first["at"].endswith("+00:00")
