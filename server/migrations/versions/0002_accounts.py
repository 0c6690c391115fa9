"""Accounts, sessions, classrooms, invite links and members.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "account",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("email", sa.String(254), nullable=False, unique=True),
        sa.Column("name", sa.String(80), nullable=False, server_default=""),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_table(
        "account_session",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column(
            "account_id",
            sa.Integer(),
            sa.ForeignKey("account.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
    )
    op.create_index("ix_account_session_account_id", "account_session", ["account_id"])
    op.create_table(
        "classroom",
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("owner_id", sa.Integer(), sa.ForeignKey("account.id"), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("archived_at", TS, nullable=True),
    )
    op.create_index("ix_classroom_owner_id", "classroom", ["owner_id"])
    op.create_table(
        "classroom_invite",
        sa.Column("code", sa.String(64), primary_key=True),
        sa.Column("classroom_id", sa.String(128), sa.ForeignKey("classroom.id"), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("expires_at", TS, nullable=True),
        sa.Column("max_uses", sa.Integer(), nullable=True),
        sa.Column("uses", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("revoked_at", TS, nullable=True),
    )
    op.create_index("ix_classroom_invite_classroom_id", "classroom_invite", ["classroom_id"])
    op.create_table(
        "classroom_member",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("classroom_id", sa.String(128), sa.ForeignKey("classroom.id"), nullable=False),
        sa.Column("invite_code", sa.String(64), nullable=False),
        sa.Column("name", sa.String(80), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("removed_at", TS, nullable=True),
    )
    op.create_index("ix_classroom_member_classroom_id", "classroom_member", ["classroom_id"])
    op.create_index("ix_classroom_member_invite_code", "classroom_member", ["invite_code"])


def downgrade() -> None:
    op.drop_table("classroom_member")
    op.drop_table("classroom_invite")
    op.drop_table("classroom")
    op.drop_table("account_session")
    op.drop_table("account")
