"""The :class:`~collab.ports.Store` on SQL (SQLite file by default, PostgreSQL by URL).

Two tables. ``collab_document`` holds one row per document: its sequence counter and the
latest snapshot with the sequence number it covers. ``collab_update`` is the append-only
log: every update with its author and time, never deleted, so history can be replayed.

Sequence numbers are allocated by incrementing the document row inside the appending
transaction, which serialises appends per document across nodes: sequence order is commit
order, so "snapshot covers up to N, load everything after N" can never miss a row that
committed late.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from sqlalchemy import (
    Column,
    Connection,
    DateTime,
    Engine,
    LargeBinary,
    String,
    event,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, SQLModel

from ..compaction import fold
from ..ports import DocumentName, LoadedDocument, StoredUpdate


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

    async def compact(self, name: DocumentName) -> None:
        await asyncio.to_thread(self._compact, name)

    async def history(self, name: DocumentName) -> list[StoredUpdate]:
        """Every logged update in order (the admin inspector replays these)."""
        return await asyncio.to_thread(self._history, name)

    def _load(self, name: str) -> LoadedDocument:
        with self._engine.connect() as conn:
            row = conn.execute(
                select(_doc.c.snapshot, _doc.c.snapshot_seq).where(_doc.c.name == name)
            ).first()
            if row is None:
                return LoadedDocument(None, [])
            snapshot, since = row
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
                return
            except IntegrityError:
                # Another node created a document row first; the next try updates it.
                if attempt == 2:
                    raise

    def _compact(self, name: str) -> None:
        with self._engine.begin() as conn:
            row = conn.execute(
                select(_doc.c.snapshot, _doc.c.snapshot_seq, _doc.c.last_seq)
                .where(_doc.c.name == name)
                .with_for_update()
            ).first()
            if row is None:
                return
            snapshot, since, last = row
            if last <= since:
                return
            tail = conn.execute(
                select(_upd.c.data)
                .where(_upd.c.document == name, _upd.c.seq > since, _upd.c.seq <= last)
                .order_by(_upd.c.seq)
            ).scalars()
            folded = fold(snapshot, list(tail))
            conn.execute(
                update(_doc)
                .where(_doc.c.name == name)
                .values(snapshot=folded, snapshot_seq=last, updated_at=_now())
            )

    def _history(self, name: str) -> list[StoredUpdate]:
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(_upd.c.data, _upd.c.author, _upd.c.created_at)
                .where(_upd.c.document == name)
                .order_by(_upd.c.seq)
            ).all()
        return [StoredUpdate(r.data, r.author, r.created_at) for r in rows]


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
