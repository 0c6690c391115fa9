"""Classroom attendance, recorded by the server from connects and disconnects.

Every tracked WebSocket writes one row when it opens (who, which document, which device
and address) and completes it when it closes. The page opens a classroom's board and its
class document at once, and a flaky link drops and rejoins: :func:`presence` merges a
user's overlapping rows on one device into the intervals they were actually there.
Billing shows these intervals as dispute evidence.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Engine

metadata = sa.MetaData()  # tables created by migration 0004

attendance_table = sa.Table(
    "attendance",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("classroom", sa.String(128), nullable=False),
    sa.Column("document", sa.String(512), nullable=False),
    sa.Column("user_id", sa.String(255), nullable=False),
    sa.Column("name", sa.String(80), nullable=False, server_default=""),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("device", sa.String(255), nullable=False, server_default=""),
    sa.Column("address", sa.String(64), nullable=False, server_default=""),
    sa.Column("node", sa.String(64), nullable=False, server_default=""),
    sa.Column("joined_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("left_at", sa.DateTime(timezone=True), nullable=True),
    sa.Index("ix_attendance_classroom_joined", "classroom", "joined_at"),
)

NODE = f"{socket.gethostname()}:{os.getpid()}"[:64]
MAX_ROWS = 10_000
# Rows waiting for the database (it is down, or slow): beyond this the oldest are
# dropped, with an error in the log, so a database outage cannot grow the node's memory.
MAX_PENDING = 20_000
RETRY_S = 1.0

log = logging.getLogger("inkroom.server.attendance")


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Visit:
    """One connection (a row), or after :func:`presence` one merged stay."""

    user_id: str
    name: str
    role: str
    device: str
    address: str
    joined_at: datetime
    left_at: datetime | None  # None: still connected
    document: str = ""

    def public(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "name": self.name,
            "role": self.role,
            "device": self.device,
            "address": self.address,
            "from": self.joined_at.isoformat(),
            "to": self.left_at.isoformat() if self.left_at else None,
            "seconds": int(((self.left_at or datetime.now(UTC)) - self.joined_at).total_seconds()),
        }


def presence(visits: Iterable[Visit], *, gap: timedelta = timedelta(0)) -> list[Visit]:
    """Merges each (user, device)'s overlapping visits (or ones less than ``gap`` apart)
    into stays, ordered by start. A drop and rejoin leaves two stays unless ``gap`` covers
    the time in between. Pure."""
    by_key: dict[tuple[str, str], list[Visit]] = {}
    for v in visits:
        by_key.setdefault((v.user_id, v.device), []).append(v)
    out: list[Visit] = []
    for group in by_key.values():
        group.sort(key=lambda v: v.joined_at)
        current = group[0]
        for v in group[1:]:
            end = current.left_at
            if end is None or v.joined_at <= end + gap:
                later = None if end is None or v.left_at is None else max(end, v.left_at)
                current = Visit(
                    current.user_id,
                    v.name or current.name,
                    current.role,
                    current.device,
                    current.address,
                    current.joined_at,
                    later,
                )
            else:
                out.append(_stay(current))
                current = v
        out.append(_stay(current))
    out.sort(key=lambda v: (v.joined_at, v.user_id))
    return out


def _stay(v: Visit) -> Visit:
    return Visit(v.user_id, v.name, v.role, v.device, v.address, v.joined_at, v.left_at)


class Attendance:
    """Synchronous: :class:`VisitLog` calls :meth:`record` in a worker thread."""

    def __init__(self, engine: Engine, node: str = NODE) -> None:
        self._engine = engine
        self._node = node

    def record(
        self, rows: Sequence[dict[str, Any]], closes: Sequence[tuple[int, datetime]]
    ) -> list[int]:
        """Inserts ``rows`` (the ids, in order) and completes ``closes`` (id, left at), in
        one transaction."""
        t = attendance_table
        ids: list[int] = []
        with self._engine.begin() as conn:
            if rows:
                result = conn.execute(
                    t.insert().returning(t.c.id, sort_by_parameter_order=True),
                    [{**_clip(row), "node": self._node} for row in rows],
                )
                ids = [int(r[0]) for r in result]
            if closes:
                conn.execute(
                    t.update()
                    .where(t.c.id == sa.bindparam("visit"), t.c.left_at.is_(None))
                    .values(left_at=sa.bindparam("left")),
                    [{"visit": visit, "left": at} for visit, at in closes],
                )
        return ids

    def visits(
        self,
        classrooms: Sequence[str],
        *,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[Visit]:
        """The rows of ``classrooms`` (newest :data:`MAX_ROWS` at most), oldest first."""
        t = attendance_table
        query = sa.select(t).where(t.c.classroom.in_(list(classrooms)))
        if since is not None:
            query = query.where(sa.or_(t.c.left_at.is_(None), t.c.left_at >= since))
        if until is not None:
            query = query.where(t.c.joined_at <= until)
        query = query.order_by(t.c.joined_at.desc()).limit(MAX_ROWS)
        with self._engine.connect() as conn:
            rows = conn.execute(query).all()
        visits = [
            Visit(
                r.user_id,
                r.name,
                r.role,
                r.device,
                r.address,
                _utc(r.joined_at) or datetime.now(UTC),
                _utc(r.left_at),
                r.document,
            )
            for r in rows
        ]
        visits.reverse()
        return visits


# Text is cut to its column's length (a user agent can be any length).
_LIMITS = {
    c.name: c.type.length
    for c in attendance_table.columns
    if isinstance(c.type, sa.String) and c.type.length is not None
}


def _clip(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v[: _LIMITS[k]] if k in _LIMITS else v for k, v in row.items()}


class OpenVisit:
    """A connection's row, written by :class:`VisitLog` (``id`` once it is)."""

    __slots__ = ("id", "left_at", "left_written", "row", "stored")

    def __init__(self, row: dict[str, Any], stored: asyncio.Future[None]) -> None:
        self.row = row
        self.stored = stored
        self.id: int | None = None
        self.left_at: datetime | None = None
        self.left_written = False


class VisitLog:
    """Attendance rows written in groups: one thread hand-off and one transaction for
    every connection that opened or closed meanwhile (a group commit).

    At the start of the hour hundreds join at once; a transaction each was a quarter of
    a join's CPU. A join still waits until its row is stored, as before, so attendance
    never trails what the node served; a close does not wait. Evidence, not a gate: a
    database error is logged, the connection goes on, and the rows are retried (at most
    :data:`MAX_PENDING` kept).
    """

    def __init__(self, attendance: Attendance, *, retry_s: float = RETRY_S) -> None:
        self.attendance = attendance
        self._retry_s = retry_s
        self._opens: list[OpenVisit] = []
        self._closes: list[OpenVisit] = []
        self._writer: asyncio.Task[None] | None = None
        self.dropped = 0

    async def opened(self, **row: Any) -> OpenVisit:
        """Records a connection's start; returns once it is stored (or failed to be)."""
        row.setdefault("joined_at", datetime.now(UTC))
        visit = OpenVisit(row, asyncio.get_running_loop().create_future())
        self._opens.append(visit)
        self._start()
        # Shielded: a connection torn down meanwhile still leaves its row.
        await asyncio.shield(visit.stored)
        return visit

    def closed(self, visit: OpenVisit, at: datetime | None = None) -> None:
        """Records a connection's end, written with the next group."""
        if visit.left_at is not None:
            return
        visit.left_at = at or datetime.now(UTC)
        if visit.id is not None:
            self._closes.append(visit)
            self._start()
        # Otherwise its row is not written yet: the insert carries the end, or the writer
        # completes it once the insert in flight has an id.

    async def flush(self) -> None:
        """Waits until what was recorded so far is written (before reading the table)."""
        while self._writer is not None and not self._writer.done():
            await asyncio.shield(self._writer)

    def _start(self) -> None:
        if self._writer is None or self._writer.done():
            # Owned here: :meth:`flush` waits for it (Connections.aclose at shutdown); it
            # ends when nothing is pending.
            self._writer = asyncio.get_running_loop().create_task(self._write())

    async def _write(self) -> None:
        while self._opens or self._closes:
            opens, self._opens = self._opens, []
            closes, self._closes = self._closes, []
            rows = [{**v.row, "left_at": v.left_at} for v in opens]
            ends = [(v.id, v.left_at) for v in closes if v.id is not None and v.left_at]
            try:
                ids = await asyncio.to_thread(self.attendance.record, rows, ends)
            except Exception:
                log.exception(
                    "attendance not recorded, retrying",
                    extra={"opened": len(opens), "closed": len(closes)},
                )
                for v in opens:
                    if not v.stored.done():
                        v.stored.set_result(None)  # the lesson goes on without its row
                self._opens[:0] = opens
                self._closes[:0] = closes
                self._bound()
                await asyncio.sleep(self._retry_s)
                continue
            for visit, row, visit_id in zip(opens, rows, ids, strict=True):
                visit.id = visit_id
                if visit.left_at is not None and row["left_at"] is None:
                    self._closes.append(visit)  # it closed while its insert was in flight
                if not visit.stored.done():
                    visit.stored.set_result(None)

    def _bound(self) -> None:
        excess = len(self._opens) + len(self._closes) - MAX_PENDING
        if excess > 0:
            drop_closes = min(excess, len(self._closes))
            del self._closes[:drop_closes]
            del self._opens[: excess - drop_closes]
            self.dropped += excess
            log.error(
                "attendance rows dropped: the database is unreachable", extra={"rows": excess}
            )
