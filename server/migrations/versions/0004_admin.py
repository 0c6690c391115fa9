"""Admin inspector: history indexes, the audit log, attendance, deleted documents.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    # "The document at T" and time filters range over created_at; per-author pages over
    # (author, seq). Paging by sequence alone uses the primary key (document, seq).
    op.create_index(
        "ix_collab_update_document_created", "collab_update", ["document", "created_at"]
    )
    op.create_index(
        "ix_collab_update_document_author", "collab_update", ["document", "author", "seq"]
    )
    op.create_table(
        "admin_audit",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("at", TS, nullable=False, index=True),
        sa.Column("actor", sa.String(255), nullable=False, index=True),
        sa.Column("method", sa.String(8), nullable=False),
        sa.Column("path", sa.String(1024), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target", sa.String(512), nullable=True),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("address", sa.String(64), nullable=False),
        sa.Column("user_agent", sa.String(255), nullable=False, server_default=""),
        sa.Column("detail", sa.Text(), nullable=True),
    )
    op.create_table(
        "attendance",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("classroom", sa.String(128), nullable=False),
        sa.Column("document", sa.String(512), nullable=False),
        sa.Column("user_id", sa.String(255), nullable=False),
        sa.Column("name", sa.String(80), nullable=False, server_default=""),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("device", sa.String(255), nullable=False, server_default=""),
        sa.Column("address", sa.String(64), nullable=False, server_default=""),
        sa.Column("node", sa.String(64), nullable=False, server_default=""),
        sa.Column("joined_at", TS, nullable=False),
        sa.Column("left_at", TS, nullable=True),
    )
    op.create_index("ix_attendance_classroom_joined", "attendance", ["classroom", "joined_at"])
    op.create_table(
        "document_deletion",
        sa.Column("name", sa.String(512), primary_key=True),
        sa.Column("deleted_at", TS, nullable=False),
        sa.Column("deleted_by", sa.String(255), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("document_deletion")
    op.drop_index("ix_attendance_classroom_joined", "attendance")
    op.drop_table("attendance")
    op.drop_table("admin_audit")
    op.drop_index("ix_collab_update_document_author", "collab_update")
    op.drop_index("ix_collab_update_document_created", "collab_update")
