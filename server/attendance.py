"""Classroom attendance, recorded by the server from connects and disconnects.

Every tracked WebSocket writes one row when it opens (who, which document, which device
and address) and completes it when it closes. The page opens a classroom's board and its
class document at once, and a flaky link drops and rejoins: :func:`presence` merges a
user's overlapping rows on one device into the intervals they were actually there.
Billing shows these intervals as dispute evidence.
"""

from __future__ import annotations

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
    """Synchronous; the connection tracker calls it through ``asyncio.to_thread``."""

    def __init__(self, engine: Engine, node: str = NODE) -> None:
        self._engine = engine
        self._node = node

    def opened(
        self,
        *,
        classroom: str,
        document: str,
        user_id: str,
        name: str,
        role: str,
        device: str,
        address: str,
        at: datetime | None = None,
    ) -> int:
        with self._engine.begin() as conn:
            result = conn.execute(
                attendance_table.insert().values(
                    classroom=classroom[:128],
                    document=document[:512],
                    user_id=user_id[:255],
                    name=name[:80],
                    role=role[:16],
                    device=device[:255],
                    address=address[:64],
                    node=self._node,
                    joined_at=at or datetime.now(UTC),
                )
            )
            key = result.inserted_primary_key
            assert key is not None
            return int(key[0])

    def closed(self, visit_id: int, at: datetime | None = None) -> None:
        with self._engine.begin() as conn:
            conn.execute(
                attendance_table.update()
                .where(attendance_table.c.id == visit_id, attendance_table.c.left_at.is_(None))
                .values(left_at=at or datetime.now(UTC))
            )

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
