"""The :class:`~collab.ports.Store` on SQL (SQLite file by default, PostgreSQL by URL).

Two tables. ``collab_document`` holds one row per document: its sequence counter and the
latest snapshot with the sequence number it covers (deflated behind a marker since issue
13; plain snapshots written before still load, see :mod:`collab.compaction`).
``collab_update`` is the append-only log: every update with its author and time, never
deleted, so history can be replayed.

Sequence numbers are allocated by incrementing the document row inside the appending
transaction, which serialises appends per document across nodes: sequence order is commit
order, so "snapshot covers up to N, load everything after N" can never miss a row that
committed late.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    DateTime,
    Engine,
    Index,
    LargeBinary,
    String,
    event,
    func,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, SQLModel

from .. import metrics
from ..compaction import fold, pack_snapshot, unpack_snapshot
from ..history import as_utc, check_limit, replay, sort_contributions
from ..ports import (
    Contribution,
    DocumentName,
    HistoryEntry,
    HistoryPage,
    LoadedDocument,
    PastState,
    StoredUpdate,
)


def _now() -> datetime:
    return datetime.now(UTC)


class DocumentRow(SQLModel, table=True):
    __tablename__ = "collab_document"

    name: str = Field(sa_column=Column(String(512), primary_key=True))
    last_seq: int = 0
    snapshot: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    snapshot_seq: int = 0
    created_at: datetime = Field(default_factory=_now, sa_column=Column(DateTime(timezone=True)))
    updated_at: datetime = Field(default_factory=_now, sa_column=Column(DateTime(timezone=True)))


class UpdateRow(SQLModel, table=True):
    __tablename__ = "collab_update"
    # Migration 0004: time ranges ("the document at T", filters) and per-author paging.
    __table_args__ = (
        Index("ix_collab_update_document_created", "document", "created_at"),
        Index("ix_collab_update_document_author", "document", "author", "seq"),
    )

    document: str = Field(sa_column=Column(String(512), primary_key=True))
    seq: int = Field(primary_key=True)
    data: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    author: str | None = Field(default=None, max_length=255)
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


metadata = SQLModel.metadata
_doc = DocumentRow.__table__  # type: ignore[attr-defined]
_upd = UpdateRow.__table__  # type: ignore[attr-defined]


def configure_sqlite(engine: Engine) -> None:
    """WAL lets readers proceed during a write; a busy timeout waits out short locks."""

    @event.listens_for(engine, "connect")
    def _pragma(dbapi_conn, _record):  # type: ignore[no-untyped-def]
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=5000")
        cursor.close()


class SqlStore:
    """Blocking SQL work runs in threads; each method is one transaction."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    async def load(self, name: DocumentName) -> LoadedDocument:
        return await asyncio.to_thread(self._load, name)

    async def append(self, batches: Mapping[DocumentName, Sequence[StoredUpdate]]) -> None:
        work = {name: list(updates) for name, updates in batches.items() if updates}
        if work:
            await asyncio.to_thread(self._append, work)

    async def compact(self, name: DocumentName) -> int:
        return await asyncio.to_thread(self._compact, name)

    async def history(
        self,
        name: DocumentName,
        *,
        after: int = 0,
        limit: int = 100,
        author: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> HistoryPage:
        limit = check_limit(limit)
        return await asyncio.to_thread(
            self._history, name, after, limit, author, as_utc(since), as_utc(until)
        )

    async def contributions(
        self, name: DocumentName, *, since: datetime | None = None, until: datetime | None = None
    ) -> list[Contribution]:
        return await asyncio.to_thread(self._contributions, name, as_utc(since), as_utc(until))

    async def state_at(self, name: DocumentName, at: datetime) -> PastState:
        return await asyncio.to_thread(self._state_at, name, as_utc(at) or at)

    def _load(self, name: str) -> LoadedDocument:
        with self._engine.connect() as conn:
            row = conn.execute(
                select(_doc.c.snapshot, _doc.c.snapshot_seq).where(_doc.c.name == name)
            ).first()
            if row is None:
                return LoadedDocument(None, [])
            snapshot, since = row
            if snapshot is not None:
                snapshot = unpack_snapshot(snapshot)
            rows = conn.execute(
                select(_upd.c.data, _upd.c.author)
                .where(_upd.c.document == name, _upd.c.seq > since)
                .order_by(_upd.c.seq)
            ).all()
            return LoadedDocument(snapshot, [r.data for r in rows], [r.author for r in rows])

    def _append(self, batches: dict[DocumentName, list[StoredUpdate]]) -> None:
        for attempt in range(3):
            try:
                with self._engine.begin() as conn:
                    # A fixed order, so two nodes saving the same documents cannot deadlock.
                    for name in sorted(batches):
                        _append_one(conn, name, batches[name])
                metrics.STORE_LOG_BYTES.inc(sum(len(u.data) for b in batches.values() for u in b))
                return
            except IntegrityError:
                # Another node created a document row first; the next try updates it.
                if attempt == 2:
                    raise

    def _compact(self, name: str) -> int:
        with self._engine.begin() as conn:
            row = conn.execute(
                select(_doc.c.snapshot, _doc.c.snapshot_seq, _doc.c.last_seq)
                .where(_doc.c.name == name)
                .with_for_update()
            ).first()
            if row is None:
                return 0
            stored, since, last = row
            snapshot = unpack_snapshot(stored) if stored is not None else None
            if last <= since:
                return len(snapshot or b"")
            tail = conn.execute(
                select(_upd.c.data)
                .where(_upd.c.document == name, _upd.c.seq > since, _upd.c.seq <= last)
                .order_by(_upd.c.seq)
            ).scalars()
            folded = fold(snapshot, list(tail))
            packed = pack_snapshot(folded)
            # Never behind what is there: SQLite takes no row lock on the read above, so
            # two compactions can overlap, and the one that read less must not win.
            conn.execute(
                update(_doc)
                .where(_doc.c.name == name, _doc.c.snapshot_seq < last)
                .values(snapshot=packed, snapshot_seq=last, updated_at=_now())
            )
        metrics.STORE_SNAPSHOT_BYTES.inc(len(packed))
        return len(folded)

    def _history(
        self,
        name: str,
        after: int,
        limit: int,
        author: str | None,
        since: datetime | None,
        until: datetime | None,
    ) -> HistoryPage:
        query = (
            select(_upd.c.seq, _upd.c.author, _upd.c.created_at, _upd.c.data)
            .where(*_filters(name, author, since, until), _upd.c.seq > after)
            .order_by(_upd.c.seq)
            .limit(limit + 1)
        )
        with self._engine.connect() as conn:
            rows = conn.execute(query).all()
        entries = [HistoryEntry(r.seq, r.author, _utc(r.created_at), r.data) for r in rows]
        if len(entries) > limit:
            return HistoryPage(entries[:limit], entries[limit - 1].seq)
        return HistoryPage(entries, None)

    def _contributions(
        self, name: str, since: datetime | None, until: datetime | None
    ) -> list[Contribution]:
        query = (
            select(
                _upd.c.author,
                func.count(),
                func.coalesce(func.sum(func.length(_upd.c.data)), 0),
                func.min(_upd.c.created_at),
                func.max(_upd.c.created_at),
            )
            .where(*_filters(name, None, since, until))
            .group_by(_upd.c.author)
        )
        with self._engine.connect() as conn:
            rows = conn.execute(query).all()
        return sort_contributions(
            Contribution(r[0], int(r[1]), int(r[2]), _utc(r[3]), _utc(r[4])) for r in rows
        )

    def _state_at(self, name: str, at: datetime) -> PastState:
        with self._engine.connect() as conn:
            upto = conn.execute(
                select(func.max(_upd.c.seq)).where(_upd.c.document == name, _upd.c.created_at <= at)
            ).scalar()
            if not upto:
                return PastState(0, replay(None, []))
            row = conn.execute(
                select(_doc.c.snapshot, _doc.c.snapshot_seq).where(_doc.c.name == name)
            ).first()
            snapshot, since = (None, 0)
            if row is not None and row.snapshot is not None and 0 < row.snapshot_seq <= upto:
                snapshot, since = unpack_snapshot(row.snapshot), row.snapshot_seq
            tail = conn.execute(
                select(_upd.c.data)
                .where(_upd.c.document == name, _upd.c.seq > since, _upd.c.seq <= upto)
                .order_by(_upd.c.seq)
            ).scalars()
            return PastState(upto, replay(snapshot, tail))


def _utc(value: datetime) -> datetime:
    # SQLite hands back naive datetimes for timezone-aware columns: they were stored as UTC.
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _filters(
    name: str, author: str | None, since: datetime | None, until: datetime | None
) -> list[Any]:
    out: list[Any] = [_upd.c.document == name]
    if author is not None:
        out.append(_upd.c.author == author)
    if since is not None:
        out.append(_upd.c.created_at >= since)
    if until is not None:
        out.append(_upd.c.created_at <= until)
    return out


def _append_one(conn: Connection, name: str, updates: list[StoredUpdate]) -> None:
    last = conn.execute(
        update(_doc)
        .where(_doc.c.name == name)
        .values(last_seq=_doc.c.last_seq + len(updates), updated_at=_now())
        .returning(_doc.c.last_seq)
    ).scalar()
    if last is None:
        conn.execute(_doc.insert().values(name=name, last_seq=len(updates)))
        last = len(updates)
    first = last - len(updates) + 1
    conn.execute(
        _upd.insert(),
        [
            {
                "document": name,
                "seq": first + i,
                "data": u.data,
                "author": u.author,
                "created_at": u.created_at,
            }
            for i, u in enumerate(updates)
        ],
    )
