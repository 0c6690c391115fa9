"""Reports of the ``/check`` connection self-test, kept for the tutor and admins.

A report is judged before it is stored (every byte from a client is hostile): a JSON
object of at most :data:`MAX_REPORT_BYTES`, a verdict in one of the three words, short
candidate types. Who sent it, and for which classroom, come from the token, never from
the report. At most :data:`MAX_ROWS` reports are kept: each insert drops the oldest
beyond that, so a flood cannot grow the table.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Engine

from .errors import ServerError

metadata = sa.MetaData()  # the table is created by migration 0005

check_report_table = sa.Table(
    "check_report",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("classroom", sa.String(128), nullable=True),
    sa.Column("user_id", sa.String(255), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("verdict", sa.String(16), nullable=False),
    sa.Column("candidate_types", sa.String(255), nullable=False),
    sa.Column("user_agent", sa.String(255), nullable=False),
    sa.Column("address", sa.String(64), nullable=False),
    sa.Column("report", sa.Text, nullable=False),
)

MAX_REPORT_BYTES = 16 * 1024
MAX_ROWS = 5000
POSTS_PER_HOUR = 20  # per user: each report is a row
VERDICTS = frozenset({"full video", "low video", "audio only"})


class BadReport(ServerError):
    """A report that is not one (HTTP 400)."""

    status_code = 400


@dataclass(frozen=True, slots=True)
class Judged:
    """What is stored of a report besides the report itself."""

    verdict: str
    candidate_types: list[str]
    text: str


def judge(body: bytes) -> Judged:
    """Raises :class:`BadReport` (with the reason) for anything but a plausible report."""
    if len(body) > MAX_REPORT_BYTES:
        raise BadReport(f"a report is at most {MAX_REPORT_BYTES} bytes")
    try:
        report = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise BadReport("the report is not JSON") from exc
    if not isinstance(report, dict):
        raise BadReport("the report must be a JSON object")
    verdict = report.get("verdict")
    if verdict not in VERDICTS:
        raise BadReport("'verdict' must be 'full video', 'low video' or 'audio only'")
    types = report.get("candidateTypes", [])
    if (
        not isinstance(types, list)
        or len(types) > 10
        or not all(isinstance(t, str) and 0 < len(t) <= 16 for t in types)
    ):
        raise BadReport("'candidateTypes' must be a short list of short strings")
    return Judged(str(verdict), sorted(set(types)), json.dumps(report, separators=(",", ":")))


class CheckReports:
    """Synchronous; the HTTP edge calls it through ``run`` (a thread)."""

    def __init__(self, engine: Engine, *, max_rows: int = MAX_ROWS) -> None:
        self._engine = engine
        self.max_rows = max_rows

    def add(
        self,
        judged: Judged,
        *,
        classroom: str | None,
        user_id: str,
        role: str,
        user_agent: str,
        address: str,
    ) -> int:
        with self._engine.begin() as conn:
            result = conn.execute(
                check_report_table.insert().values(
                    at=datetime.now(UTC),
                    classroom=classroom,
                    user_id=user_id[:255],
                    role=role[:16],
                    verdict=judged.verdict,
                    candidate_types=",".join(judged.candidate_types)[:255],
                    user_agent=user_agent[:255],
                    address=address[:64],
                    report=judged.text,
                )
            )
            key = result.inserted_primary_key
            assert key is not None
            new_id = int(key[0])
            conn.execute(
                check_report_table.delete().where(check_report_table.c.id <= new_id - self.max_rows)
            )
            return new_id

    def recent(self, *, classroom: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """Newest first, at most 200."""
        t = check_report_table
        query = sa.select(t).order_by(t.c.id.desc()).limit(max(1, min(limit, 200)))
        if classroom is not None:
            query = query.where(t.c.classroom == classroom)
        with self._engine.connect() as conn:
            rows = conn.execute(query).all()
        return [
            {
                "id": r.id,
                "at": (r.at if r.at.tzinfo else r.at.replace(tzinfo=UTC)).isoformat(),
                "classroom": r.classroom,
                "userId": r.user_id,
                "role": r.role,
                "verdict": r.verdict,
                "candidateTypes": [c for c in r.candidate_types.split(",") if c],
                "userAgent": r.user_agent,
                "address": r.address,
                "report": json.loads(r.report),
            }
            for r in rows
        ]
