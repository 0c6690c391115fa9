"""The :class:`~collab.ports.Store` on SQL (SQLite file by default, PostgreSQL by URL).

Two tables. ``collab_document`` holds one row per document: its sequence counter and the
latest snapshot with the sequence number it covers (deflated behind a marker since issue
13; plain snapshots written before still load, see :mod:`collab.compaction`).
``collab_update`` is the append-only log: every update with its author and time, never
deleted, so history can be replayed. Since issue 13 one row may hold several entries (one
author's of one save, deflated: :mod:`collab.logpack`); every read unpacks them, so what
the store answers is still one entry per update, and rows written before read as they are.

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
    and_,
    event,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, SQLModel

from .. import metrics
from ..compaction import fold, pack_snapshot, unpack_snapshot
from ..history import as_utc, check_limit, matches, replay, sort_contributions
from ..logpack import BUNDLE, SEQ_SPAN, TIME_SPAN, pack, sizes, unpack, updates_of
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
            tail = _updates(conn, _upd.c.document == name, _upd.c.seq > since)
            return LoadedDocument(snapshot, [u for _, _, u in tail], [a for _, a, _ in tail])

    def _append(self, batches: dict[DocumentName, list[StoredUpdate]]) -> None:
        for attempt in range(3):
            try:
                with self._engine.begin() as conn:
                    # A fixed order, so two nodes saving the same documents cannot deadlock.
                    written = sum(
                        _append_one(conn, name, batches[name]) for name in sorted(batches)
                    )
                metrics.STORE_LOG_BYTES.inc(written)
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
            tail = _updates(conn, _upd.c.document == name, _upd.c.seq > since, _upd.c.seq <= last)
            folded = fold(snapshot, [u for _, _, u in tail])
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
        need = limit + 1
        where = _filters(name, author, since, until)
        found: dict[int, HistoryEntry] = {}

        def take(rows: Sequence[Any], upto: float) -> None:
            for row in rows:
                for e in unpack(_row(row)):
                    if after < e.seq <= upto and matches(e, author, since, until):
                        found[e.seq] = e

        cursor = after
        # Rows per query: few at first (a bundle may hold hundreds of entries), doubling
        # up to one per entry wanted (plain rows).
        batch = 8
        with self._engine.connect() as conn:
            while True:
                rows = conn.execute(
                    _select_rows(*where, _upd.c.seq > cursor).order_by(_upd.c.seq).limit(batch)
                ).all()
                take(rows, float("inf"))
                if len(rows) < batch:
                    break  # every row read
                batch = min(batch * 2, need)
                # Bundles that end after ``cursor`` may hold entries up to it: with them,
                # every entry up to ``cursor`` is known.
                cursor = rows[-1].seq
                take(
                    conn.execute(
                        _select_rows(
                            *where, _upd.c.seq > cursor, _upd.c.seq < cursor + SEQ_SPAN, _BUNDLED
                        )
                    ).all(),
                    cursor,
                )
                if sum(1 for seq in found if seq <= cursor) >= need:
                    found = {seq: e for seq, e in found.items() if seq <= cursor}
                    break
        entries = sorted(found.values(), key=lambda e: e.seq)
        if len(entries) > limit:
            return HistoryPage(entries[:limit], entries[limit - 1].seq)
        return HistoryPage(entries, None)

    def _contributions(
        self, name: str, since: datetime | None, until: datetime | None
    ) -> list[Contribution]:
        # Plain rows summed in SQL, as before bundles; bundles from their size columns.
        plain = (
            select(
                _upd.c.author,
                func.count(),
                func.coalesce(func.sum(func.length(_upd.c.data)), 0),
                func.min(_upd.c.created_at),
                func.max(_upd.c.created_at),
            )
            .where(*_exact_filters(name, since, until), ~_BUNDLED)
            .group_by(_upd.c.author)
        )
        bundled = select(_upd.c.seq, _upd.c.author, _upd.c.created_at, _upd.c.data).where(
            *_filters(name, None, since, until), _BUNDLED
        )
        totals: dict[str | None, Contribution] = {}
        with self._engine.connect() as conn:
            for r in conn.execute(plain).all():
                totals[r[0]] = Contribution(r[0], int(r[1]), int(r[2]), _utc(r[3]), _utc(r[4]))
            for r in conn.execute(bundled).all():
                held = [
                    (at, size)
                    for _, at, size in sizes(_row(r))
                    if (since is None or at >= since) and (until is None or at <= until)
                ]
                if held:
                    part = Contribution(
                        r.author, len(held), sum(n for _, n in held), held[0][0], held[-1][0]
                    )
                    totals[r.author] = _sum(totals.get(r.author), part)
        return sort_contributions(totals.values())

    def _state_at(self, name: str, at: datetime) -> PastState:
        with self._engine.connect() as conn:
            # The last row that starts by ``at``; the last entry written by ``at`` is in
            # it, in a plain row before it, or in a bundle near it (SEQ_SPAN).
            near = conn.execute(
                select(func.max(_upd.c.seq)).where(_upd.c.document == name, _upd.c.created_at <= at)
            ).scalar()
            if not near:
                return PastState(0, replay(None, []))
            window = (
                _upd.c.document == name,
                _upd.c.created_at <= at,
                _upd.c.seq > near - SEQ_SPAN,
            )
            plain = conn.execute(select(func.max(_upd.c.seq)).where(*window, ~_BUNDLED)).scalar()
            bundles = conn.execute(
                _select_rows(*window, _upd.c.seq < near + SEQ_SPAN, _BUNDLED)
            ).all()
            upto = max(
                [plain or 0]
                + [seq for r in bundles for seq, when, _ in sizes(_row(r)) if when <= at]
            )
            row = conn.execute(
                select(_doc.c.snapshot, _doc.c.snapshot_seq).where(_doc.c.name == name)
            ).first()
            snapshot, since = (None, 0)
            if row is not None and row.snapshot is not None and 0 < row.snapshot_seq <= upto:
                snapshot, since = unpack_snapshot(row.snapshot), row.snapshot_seq
            tail = _updates(
                conn,
                _upd.c.document == name,
                _upd.c.seq > since,
                or_(_upd.c.seq <= upto, and_(_upd.c.seq < upto + SEQ_SPAN, _BUNDLED)),
            )
            return PastState(upto, replay(snapshot, (u for seq, _, u in tail if seq <= upto)))


# A row that holds a bundle (:mod:`collab.logpack`); substr works on SQLite blobs and
# PostgreSQL bytea alike.
_BUNDLED = func.substr(_upd.c.data, 1, len(BUNDLE)) == BUNDLE


def _select_rows(*where: Any) -> Any:
    return select(_upd.c.seq, _upd.c.author, _upd.c.created_at, _upd.c.data).where(*where)


def _sum(seen: Contribution | None, part: Contribution) -> Contribution:
    if seen is None:
        return part
    return Contribution(
        part.author,
        seen.updates + part.updates,
        seen.bytes + part.bytes,
        min(seen.first_at, part.first_at),
        max(seen.last_at, part.last_at),
    )


def _row(r: Any) -> HistoryEntry:
    return HistoryEntry(r.seq, r.author, _utc(r.created_at), r.data)


def _updates(conn: Connection, *where: Any) -> list[tuple[int, str | None, bytes]]:
    """``(seq, author, update)`` of the entries the rows matching ``where`` hold, in
    ``seq`` order (a load's read: no times built)."""
    rows = conn.execute(
        select(_upd.c.seq, _upd.c.author, _upd.c.data).where(*where).order_by(_upd.c.seq)
    ).all()
    # Times are not read (SQLite parses each from text): unpacking updates needs none.
    return updates_of(rows)  # rows unpack as (seq, author, data) tuples: no per-row lookups


def _utc(value: datetime) -> datetime:
    # SQLite hands back naive datetimes for timezone-aware columns: they were stored as UTC.
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _exact_filters(name: str, since: datetime | None, until: datetime | None) -> list[Any]:
    """Plain rows (one entry each, at the row's time) in ``[since, until]``."""
    out: list[Any] = [_upd.c.document == name]
    if since is not None:
        out.append(_upd.c.created_at >= since)
    if until is not None:
        out.append(_upd.c.created_at <= until)
    return out


def _filters(
    name: str, author: str | None, since: datetime | None, until: datetime | None
) -> list[Any]:
    """Rows that may hold entries matching: a row is one author's, and its time is its
    first entry's, the others within TIME_SPAN after it."""
    out: list[Any] = [_upd.c.document == name]
    if author is not None:
        out.append(_upd.c.author == author)
    if since is not None:
        out.append(_upd.c.created_at >= since - TIME_SPAN)
    if until is not None:
        out.append(_upd.c.created_at <= until)
    return out


def _append_one(conn: Connection, name: str, updates: list[StoredUpdate]) -> int:
    """Appends ``updates`` to ``name``'s log; returns the bytes its rows hold."""
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
    rows = pack(
        [
            HistoryEntry(first + i, u.author, as_utc(u.created_at) or u.created_at, u.data)
            for i, u in enumerate(updates)
        ]
    )
    conn.execute(
        _upd.insert(),
        [
            {
                "document": name,
                "seq": r.seq,
                "data": r.data,
                "author": r.author,
                "created_at": r.created_at,
            }
            for r in rows
        ],
    )
    return sum(len(r.data) for r in rows)
