"""Billing ledger: Stripe events (id as primary key), customers, subscriptions, facts,
transitions, intents, outbox and leases. Events, transitions and intents are permanent.

Revision ID: 0003
Revises: 0002 (to be re-chained after the accounts migration 0002)
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"

ID = sa.String(255)


def upgrade() -> None:
    op.create_table(
        "billing_event",
        sa.Column("id", ID, primary_key=True),
        sa.Column("type", sa.String(128), nullable=False),
        sa.Column("created", sa.BigInteger(), nullable=False),
        sa.Column("api_version", sa.String(64)),
        sa.Column("request_id", ID),
        sa.Column("idempotency_key", ID),
        sa.Column("livemode", sa.Boolean(), nullable=False),
        sa.Column("customer", ID, index=True),
        sa.Column("received_at", sa.BigInteger(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
    )
    op.create_table(
        "billing_customer",
        sa.Column("stripe_customer_id", ID, primary_key=True),
        sa.Column("account_id", ID, unique=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "billing_subscription",
        sa.Column("id", ID, primary_key=True),
        sa.Column("customer", ID, nullable=False, index=True),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("stripe_status", sa.String(32), nullable=False),
        sa.Column("created", sa.BigInteger(), nullable=False),
        sa.Column("snapshot", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "billing_fact",
        sa.Column("id", ID, primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("subscription", ID, nullable=False, index=True),
        sa.Column("customer", ID, nullable=False),
        sa.Column("status", sa.String(64), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("ends_subscription", sa.Boolean(), nullable=False),
        sa.Column("observed_at", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "billing_transition",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("subscription", ID, nullable=False),
        sa.Column("customer", ID, nullable=False, index=True),
        sa.Column("from_state", sa.String(32), nullable=False),
        sa.Column("to_state", sa.String(32), nullable=False),
        sa.Column("forbidden", sa.Boolean(), nullable=False),
        sa.Column("stripe_status", sa.String(32), nullable=False),
        sa.Column("reason", sa.String(255), nullable=False),
        sa.Column("event_id", ID),
        sa.Column("event_type", sa.String(128)),
        sa.Column("request_id", ID),
        sa.Column("idempotency_key", ID),
        sa.Column("at", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "billing_intent",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("customer", ID, index=True),
        sa.Column("account_id", ID),
        sa.Column("params_hash", sa.String(64), nullable=False),
        sa.Column("params", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("stripe_object", ID),
        sa.Column("result", sa.Text()),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_billing_intent_kind_params", "billing_intent", ["kind", "params_hash"])
    op.create_table(
        "billing_outbox",
        sa.Column("key", sa.String(300), primary_key=True),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("target", ID, nullable=False),
        sa.Column("intent_id", sa.String(64), nullable=False),
        sa.Column("params", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text()),
        sa.Column("claimed_until", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("done_at", sa.BigInteger()),
    )
    op.create_table(
        "billing_lease",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("until", sa.BigInteger(), nullable=False),
    )


def downgrade() -> None:
    for table in (
        "billing_lease",
        "billing_outbox",
        "billing_intent",
        "billing_transition",
        "billing_fact",
        "billing_subscription",
        "billing_customer",
        "billing_event",
    ):
        op.drop_table(table)
