"""Connection-check reports sent from ``/check`` (server/check_reports.py).

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"


def upgrade() -> None:
    op.create_table(
        "check_report",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("classroom", sa.String(128), nullable=True),
        sa.Column("user_id", sa.String(255), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("verdict", sa.String(16), nullable=False),
        sa.Column("candidate_types", sa.String(255), nullable=False),
        sa.Column("user_agent", sa.String(255), nullable=False),
        sa.Column("address", sa.String(64), nullable=False),
        sa.Column("report", sa.Text(), nullable=False),
    )
    op.create_index("ix_check_report_classroom_id", "check_report", ["classroom", "id"])


def downgrade() -> None:
    op.drop_index("ix_check_report_classroom_id", "check_report")
    op.drop_table("check_report")
