"""Deleted documents (an admin's soft delete) and the reasons a join is refused.

A deleted document keeps its log, so an undelete brings it back whole; until then new
connections to it are refused (4404). The refusal read lives here, beside the table, so
the admin API and the join gate (``server/join_gate.py``) share one definition.
"""

from __future__ import annotations

import sqlalchemy as sa

from .accounts import classroom_table
from .connections import classroom_of
from .errors import ClassroomArchived, NotFound, ServerError

metadata = sa.MetaData()  # tables created by migration 0004
deletion_table = sa.Table(
    "document_deletion",
    metadata,
    sa.Column("name", sa.String(512), primary_key=True),
    sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("deleted_by", sa.String(255), nullable=False),
)


def _deleted(conn: sa.Connection, name: str) -> bool:
    query = sa.select(deletion_table.c.name).where(deletion_table.c.name == name)
    return conn.execute(query).first() is not None


def is_deleted(engine: sa.Engine, name: str) -> bool:
    """Synchronous: call it in a thread."""
    with engine.connect() as conn:
        return _deleted(conn, name)


def join_refusal(engine: sa.Engine, document: str) -> ServerError | None:
    """Why a new connection to ``document`` is refused (its classroom archived, the
    document deleted), or ``None``. Both are read on one database connection.
    Synchronous: call it in a thread."""
    with engine.connect() as conn:
        archived = conn.execute(
            sa.select(classroom_table.c.archived_at).where(
                classroom_table.c.id == classroom_of(document)
            )
        ).first()
        if archived is not None and archived[0] is not None:
            return ClassroomArchived("archived")
        if _deleted(conn, document):
            return NotFound("this document was deleted")
    return None


__all__ = ["deletion_table", "is_deleted", "join_refusal"]
