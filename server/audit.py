"""The admin audit log: one permanent row per call to ``/api/admin/``, written before the
call runs (who, what, when, from where) and completed with its status.

Rows are never updated except to record the status, and never deleted.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Engine

metadata = sa.MetaData()  # tables created by migration 0004

audit_table = sa.Table(
    "admin_audit",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("actor", sa.String(255), nullable=False, index=True),
    sa.Column("method", sa.String(8), nullable=False),
    sa.Column("path", sa.String(1024), nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("target", sa.String(512), nullable=True),
    sa.Column("status", sa.Integer, nullable=False),
    sa.Column("address", sa.String(64), nullable=False),
    sa.Column("user_agent", sa.String(255), nullable=False, server_default=""),
    sa.Column("detail", sa.Text, nullable=True),
)

PENDING = 0  # the status of a call that has not answered yet (or crashed the process)


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    at: datetime
    actor: str
    method: str
    path: str
    action: str
    target: str | None
    status: int
    address: str
    user_agent: str
    detail: str | None

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": self.at.isoformat(),
            "actor": self.actor,
            "method": self.method,
            "path": self.path,
            "action": self.action,
            "target": self.target,
            "status": self.status,
            "address": self.address,
            "user_agent": self.user_agent,
            "detail": self.detail,
        }


class AuditLog:
    """Synchronous; the HTTP edge calls it through ``asyncio.to_thread``."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def begin(
        self, *, actor: str, method: str, path: str, action: str, address: str, user_agent: str
    ) -> int:
        with self._engine.begin() as conn:
            result = conn.execute(
                audit_table.insert().values(
                    at=datetime.now(UTC),
                    actor=actor[:255],
                    method=method[:8],
                    path=path[:1024],
                    action=action[:64],
                    status=PENDING,
                    address=address[:64],
                    user_agent=user_agent[:255],
                )
            )
            key = result.inserted_primary_key
            assert key is not None
            return int(key[0])

    def finish(
        self, entry_id: int, status: int, *, target: str | None = None, detail: str | None = None
    ) -> None:
        values: dict[str, Any] = {"status": status}
        if target is not None:
            values["target"] = target[:512]
        if detail is not None:
            values["detail"] = detail[:4000]
        with self._engine.begin() as conn:
            conn.execute(audit_table.update().where(audit_table.c.id == entry_id).values(values))

    def entries(self, *, before: int | None = None, limit: int = 100) -> list[AuditEntry]:
        """Newest first; ``before`` pages back by id."""
        query = sa.select(audit_table).order_by(audit_table.c.id.desc()).limit(min(limit, 500))
        if before is not None:
            query = query.where(audit_table.c.id < before)
        with self._engine.connect() as conn:
            rows = conn.execute(query).all()
        return [
            AuditEntry(
                r.id,
                r.at if r.at.tzinfo else r.at.replace(tzinfo=UTC),
                r.actor,
                r.method,
                r.path,
                r.action,
                r.target,
                r.status,
                r.address,
                r.user_agent,
                r.detail,
            )
            for r in rows
        ]
