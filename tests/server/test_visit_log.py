"""Attendance rows written in groups (server/attendance.VisitLog), on a real SQLite file."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from server.attendance import Attendance, VisitLog, attendance_table, metadata


def _row(user: str) -> dict[str, Any]:
    return {
        "classroom": "c1",
        "document": "c1/board",
        "user_id": user,
        "name": user.title(),
        "role": "student",
        "device": "d" * 400,  # clipped to the column
        "address": "127.0.0.1",
    }


def _engine(tmp_path: Path) -> sa.Engine:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'a.db'}")
    metadata.create_all(engine)
    return engine


class _Counting(Attendance):
    """Counts transactions; can fail (a database outage) or hold a transaction open."""

    def __init__(self, engine: sa.Engine) -> None:
        super().__init__(engine)
        self.calls: list[tuple[int, int]] = []
        self.failing = False
        self.gate: threading.Event | None = None
        self.entered: asyncio.Event | None = None
        self.loop: asyncio.AbstractEventLoop | None = None

    def record(self, rows: Any, closes: Any) -> list[int]:
        self.calls.append((len(rows), len(closes)))
        if self.failing:
            raise sa.exc.OperationalError("insert", {}, Exception("database is down"))
        if self.gate is not None and self.entered is not None and self.loop is not None:
            self.loop.call_soon_threadsafe(self.entered.set)
            self.gate.wait(10)
        return super().record(rows, closes)


@pytest.mark.anyio
async def test_joins_at_once_share_one_transaction_and_each_waits_for_its_row(
    tmp_path: Path,
) -> None:
    attendance = _Counting(_engine(tmp_path))
    log = VisitLog(attendance)
    visits = await asyncio.gather(*(log.opened(**_row(f"u{i}")) for i in range(50)))
    assert all(v.id is not None for v in visits)  # stored before the join goes on
    assert len({v.id for v in visits}) == 50
    assert len(attendance.calls) <= 2  # the first alone, the rest grouped
    rows = attendance.visits(["c1"])
    assert sorted(r.user_id for r in rows) == sorted(f"u{i}" for i in range(50))
    assert all(len(r.device) == 255 and r.left_at is None for r in rows)
    for v in visits[:10]:
        log.closed(v)
    await log.flush()
    left = [r for r in attendance.visits(["c1"]) if r.left_at is not None]
    assert sorted(r.user_id for r in left) == sorted(f"u{i}" for i in range(10))


@pytest.mark.anyio
async def test_a_database_outage_loses_no_visit_and_rows_arrive_once_it_returns(
    tmp_path: Path,
) -> None:
    attendance = _Counting(_engine(tmp_path))
    attendance.failing = True
    log = VisitLog(attendance, retry_s=0.05)
    async with asyncio.timeout(10):
        early = await log.opened(**_row("early"))  # the lesson goes on without its row
        late = await log.opened(**_row("late"))
    assert early.id is None
    assert late.id is None
    log.closed(early)  # closed before it was ever written: its insert carries the end
    # The database returns, but slowly: "late" closes while its insert is in flight.
    attendance.entered = asyncio.Event()
    attendance.loop = asyncio.get_running_loop()
    attendance.gate = threading.Event()
    attendance.failing = False
    async with asyncio.timeout(10):
        await attendance.entered.wait()
    log.closed(late)
    attendance.gate.set()
    async with asyncio.timeout(10):
        await log.flush()
    rows = {r.user_id: r for r in attendance.visits(["c1"])}
    assert sorted(rows) == ["early", "late"]
    assert rows["early"].left_at is not None
    assert rows["late"].left_at is not None  # written after the insert that was in flight
    with attendance._engine.connect() as conn:
        count = conn.execute(sa.select(sa.func.count()).select_from(attendance_table)).scalar()
    assert count == 2
