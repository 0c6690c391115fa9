"""The billing ledger in SQL (SQLite or PostgreSQL). Events, transitions and intents are
permanent: nothing here deletes a row of them.

SQLite transactions begin IMMEDIATE (the write lock is taken at BEGIN, so a read never has to
be upgraded and fail with a busy snapshot); PostgreSQL takes a transaction-scoped advisory
lock per customer.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection, Engine, event
from sqlalchemy.dialects import postgresql, sqlite

from ..events import Event
from ..model import AccountId, DisputeFact, RefundFact, Snapshot, SubFacts, dispute_rank
from ..ports import Effect, Intent, StoredSub, Transition
from ..states import State

metadata = sa.MetaData()
_ID = sa.String(255)

events_t = sa.Table(
    "billing_event",
    metadata,
    sa.Column("id", _ID, primary_key=True),
    sa.Column("type", sa.String(128), nullable=False),
    sa.Column("created", sa.BigInteger(), nullable=False),
    sa.Column("api_version", sa.String(64)),
    sa.Column("request_id", _ID),
    sa.Column("idempotency_key", _ID),
    sa.Column("livemode", sa.Boolean(), nullable=False),
    sa.Column("customer", _ID, index=True),
    sa.Column("received_at", sa.BigInteger(), nullable=False),
    sa.Column("payload", sa.Text(), nullable=False),
)
customers_t = sa.Table(
    "billing_customer",
    metadata,
    sa.Column("stripe_customer_id", _ID, primary_key=True),
    sa.Column("account_id", _ID, unique=True),
    sa.Column("created_at", sa.BigInteger(), nullable=False),
)
subs_t = sa.Table(
    "billing_subscription",
    metadata,
    sa.Column("id", _ID, primary_key=True),
    sa.Column("customer", _ID, nullable=False, index=True),
    sa.Column("state", sa.String(32), nullable=False),
    sa.Column("stripe_status", sa.String(32), nullable=False),
    sa.Column("created", sa.BigInteger(), nullable=False),
    sa.Column("snapshot", sa.Text(), nullable=False),
    sa.Column("updated_at", sa.BigInteger(), nullable=False),
)
facts_t = sa.Table(
    "billing_fact",
    metadata,
    sa.Column("id", _ID, primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("subscription", _ID, nullable=False, index=True),
    sa.Column("customer", _ID, nullable=False),
    sa.Column("status", sa.String(64), nullable=False),
    sa.Column("rank", sa.Integer(), nullable=False),
    sa.Column("ends_subscription", sa.Boolean(), nullable=False),
    sa.Column("observed_at", sa.BigInteger(), nullable=False),
)
transitions_t = sa.Table(
    "billing_transition",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("subscription", _ID, nullable=False),
    sa.Column("customer", _ID, nullable=False, index=True),
    sa.Column("from_state", sa.String(32), nullable=False),
    sa.Column("to_state", sa.String(32), nullable=False),
    sa.Column("forbidden", sa.Boolean(), nullable=False),
    sa.Column("stripe_status", sa.String(32), nullable=False),
    sa.Column("reason", sa.String(255), nullable=False),
    sa.Column("event_id", _ID),
    sa.Column("event_type", sa.String(128)),
    sa.Column("request_id", _ID),
    sa.Column("idempotency_key", _ID),
    sa.Column("at", sa.BigInteger(), nullable=False),
)
intents_t = sa.Table(
    "billing_intent",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("customer", _ID, index=True),
    sa.Column("account_id", _ID),
    sa.Column("params_hash", sa.String(64), nullable=False),
    sa.Column("params", sa.Text(), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("stripe_object", _ID),
    sa.Column("result", sa.Text()),
    sa.Column("created_at", sa.BigInteger(), nullable=False),
    sa.Column("updated_at", sa.BigInteger(), nullable=False),
    sa.Index("ix_billing_intent_kind_params", "kind", "params_hash"),
)
outbox_t = sa.Table(
    "billing_outbox",
    metadata,
    sa.Column("key", sa.String(300), primary_key=True),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("target", _ID, nullable=False),
    sa.Column("intent_id", sa.String(64), nullable=False),
    sa.Column("params", sa.Text(), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer(), nullable=False),
    sa.Column("last_error", sa.Text()),
    sa.Column("claimed_until", sa.BigInteger(), nullable=False),
    sa.Column("created_at", sa.BigInteger(), nullable=False),
    sa.Column("done_at", sa.BigInteger()),
)
leases_t = sa.Table(
    "billing_lease",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("owner", sa.String(64), nullable=False),
    sa.Column("until", sa.BigInteger(), nullable=False),
)


def _insert(conn: Connection, table: sa.Table) -> Any:
    """INSERT ... ON CONFLICT DO NOTHING in the connection's dialect."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    return sqlite.insert(table).on_conflict_do_nothing()


def _inserted(conn: Connection, table: sa.Table, **values: Any) -> bool:
    """Inserts unless the key exists; True if a row was inserted. (RETURNING, because the
    driver's rowcount for ON CONFLICT DO NOTHING is not reliable: psycopg reports -1.)"""
    key = next(iter(table.primary_key.columns))
    result = conn.execute(_insert(conn, table).values(**values).returning(key))
    return result.first() is not None


def _snapshot_json(snap: Snapshot) -> str:
    return json.dumps(asdict(snap), sort_keys=True)


def _snapshot(text: str) -> Snapshot:
    return Snapshot(**json.loads(text))


class SqlTx:
    def __init__(self, conn: Connection) -> None:
        self.c = conn

    def record_event(self, ev: Event, customer: str | None, now: int) -> bool:
        return _inserted(
            self.c,
            events_t,
            id=ev.id,
            type=ev.type,
            created=ev.created,
            api_version=ev.api_version,
            request_id=ev.request_id,
            idempotency_key=ev.idempotency_key,
            livemode=ev.livemode,
            customer=customer,
            received_at=now,
            payload=ev.payload,
        )

    def lock_customer(self, customer: str) -> None:
        if self.c.dialect.name == "postgresql":
            self.c.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:c))"), {"c": customer})

    def link_customer(self, customer: str, account: AccountId | None, now: int) -> None:
        self.c.execute(
            _insert(self.c, customers_t).values(
                stripe_customer_id=customer, account_id=None, created_at=now
            )
        )
        if account is not None:
            self.c.execute(
                sa.update(customers_t)
                .where(customers_t.c.stripe_customer_id == customer)
                .where(customers_t.c.account_id.is_(None))
                .values(account_id=account)
            )

    def account_of(self, customer: str) -> AccountId | None:
        value = self.c.execute(
            sa.select(customers_t.c.account_id).where(customers_t.c.stripe_customer_id == customer)
        ).scalar()
        return AccountId(value) if value else None

    def customer_of(self, account: AccountId) -> str | None:
        value = self.c.execute(
            sa.select(customers_t.c.stripe_customer_id).where(customers_t.c.account_id == account)
        ).scalar()
        return str(value) if value else None

    def customers(self) -> list[str]:
        rows = self.c.execute(
            sa.select(customers_t.c.stripe_customer_id).order_by(customers_t.c.stripe_customer_id)
        )
        return [str(r[0]) for r in rows]

    def get_sub(self, subscription_id: str) -> StoredSub | None:
        row = self.c.execute(sa.select(subs_t).where(subs_t.c.id == subscription_id)).first()
        return StoredSub(_snapshot(row.snapshot), State(row.state)) if row else None

    def subs_of(self, customer: str) -> list[StoredSub]:
        rows = self.c.execute(
            sa.select(subs_t)
            .where(subs_t.c.customer == customer)
            .order_by(subs_t.c.created, subs_t.c.id)
        )
        return [StoredSub(_snapshot(r.snapshot), State(r.state)) for r in rows]

    def put_sub(self, sub: StoredSub, now: int) -> None:
        snap = sub.snapshot
        self.link_customer(snap.customer, None, now)
        values = {
            "customer": snap.customer,
            "state": sub.state.value,
            "stripe_status": snap.status,
            "created": snap.created,
            "snapshot": _snapshot_json(snap),
            "updated_at": now,
        }
        updated = self.c.execute(sa.update(subs_t).where(subs_t.c.id == snap.id).values(**values))
        if not updated.rowcount:
            self.c.execute(sa.insert(subs_t).values(id=snap.id, **values))

    def facts(self, subscription_id: str) -> SubFacts:
        facts = SubFacts()
        rows = self.c.execute(sa.select(facts_t).where(facts_t.c.subscription == subscription_id))
        for r in rows:
            if r.kind == "refund":
                fact = RefundFact(r.id, r.subscription, r.customer, bool(r.ends_subscription))
                facts = facts.with_refund(fact)
            else:
                facts = facts.with_dispute(DisputeFact(r.id, r.subscription, r.customer, r.status))
        return facts

    def add_refund(self, fact: RefundFact, now: int) -> None:
        # Grow-only: once a refund ended the subscription, a later "failed" does not undo it.
        self._fact(
            "refund",
            fact.id,
            fact.subscription,
            fact.customer,
            "ends" if fact.ends_subscription else "kept",
            int(fact.ends_subscription),
            fact.ends_subscription,
            now,
        )

    def add_dispute(self, fact: DisputeFact, now: int) -> None:
        self._fact(
            "dispute",
            fact.id,
            fact.subscription,
            fact.customer,
            fact.status,
            dispute_rank(fact.status),
            False,
            now,
        )

    def _fact(
        self,
        kind: str,
        fact_id: str,
        sub: str,
        customer: str,
        status: str,
        rank: int,
        ends: bool,
        now: int,
    ) -> None:
        inserted = _inserted(
            self.c,
            facts_t,
            id=fact_id,
            kind=kind,
            subscription=sub,
            customer=customer,
            status=status,
            rank=rank,
            ends_subscription=ends,
            observed_at=now,
        )
        if not inserted:
            self.c.execute(
                sa.update(facts_t)
                .where(facts_t.c.id == fact_id)
                .where(facts_t.c.rank < rank)
                .values(status=status, rank=rank, ends_subscription=ends, observed_at=now)
            )

    def append_transition(self, t: Transition) -> None:
        values = asdict(t)
        values["from_state"] = t.from_state.value
        values["to_state"] = t.to_state.value
        self.c.execute(sa.insert(transitions_t).values(**values))

    def add_intent(self, intent: Intent) -> None:
        self.c.execute(
            sa.insert(intents_t).values(
                id=intent.id,
                kind=intent.kind,
                customer=intent.customer,
                account_id=intent.account,
                params_hash=intent.params_hash,
                params=intent.params,
                status=intent.status,
                stripe_object=intent.stripe_object,
                result=intent.result,
                created_at=intent.created_at,
                updated_at=intent.created_at,
            )
        )

    @staticmethod
    def _intent(row: Any) -> Intent:
        return Intent(
            id=row.id,
            kind=row.kind,
            customer=row.customer,
            account=row.account_id,
            params_hash=row.params_hash,
            params=row.params,
            status=row.status,
            created_at=row.created_at,
            stripe_object=row.stripe_object,
            result=row.result,
        )

    def get_intent(self, intent_id: str) -> Intent | None:
        row = self.c.execute(sa.select(intents_t).where(intents_t.c.id == intent_id)).first()
        return self._intent(row) if row else None

    def recent_intent(self, kind: str, params_hash: str, since: int) -> Intent | None:
        row = self.c.execute(
            sa.select(intents_t)
            .where(intents_t.c.kind == kind)
            .where(intents_t.c.params_hash == params_hash)
            .where(intents_t.c.created_at >= since)
            .where(intents_t.c.status.in_(("open", "sent")))
            .order_by(intents_t.c.created_at.desc())
            .limit(1)
        ).first()
        return self._intent(row) if row else None

    def update_intent(
        self, intent_id: str, status: str, now: int, stripe_object: str | None, result: str | None
    ) -> None:
        self.c.execute(
            sa.update(intents_t)
            .where(intents_t.c.id == intent_id)
            .values(status=status, stripe_object=stripe_object, result=result, updated_at=now)
        )

    def enqueue(self, effect: Effect, intent: Intent) -> bool:
        inserted = _inserted(
            self.c,
            outbox_t,
            key=effect.key,
            action=effect.action,
            target=effect.target,
            intent_id=effect.intent_id,
            params=effect.params,
            status=effect.status,
            attempts=0,
            claimed_until=0,
            created_at=intent.created_at,
        )
        if not inserted:
            return False
        self.add_intent(intent)
        return True

    @staticmethod
    def _effect(row: Any) -> Effect:
        return Effect(
            row.key, row.action, row.target, row.intent_id, row.status, row.attempts, row.params
        )

    def claim_effects(self, now: int, lease: int, limit: int) -> list[Effect]:
        rows = self.c.execute(
            sa.select(outbox_t)
            .where(outbox_t.c.status == "pending")
            .where(outbox_t.c.claimed_until <= now)
            .order_by(outbox_t.c.created_at, outbox_t.c.key)
            .limit(limit)
        ).all()
        claimed = []
        for row in rows:
            won = self.c.execute(
                sa.update(outbox_t)
                .where(outbox_t.c.key == row.key)
                .where(outbox_t.c.status == "pending")
                .where(outbox_t.c.claimed_until <= now)
                .values(claimed_until=now + lease)
            )
            if won.rowcount:
                claimed.append(self._effect(row))
        return claimed

    def finish_effect(self, key: str, status: str, now: int, error: str | None) -> None:
        self.c.execute(
            sa.update(outbox_t)
            .where(outbox_t.c.key == key)
            .values(
                status=status,
                attempts=outbox_t.c.attempts + 1,
                last_error=error,
                claimed_until=0 if status == "pending" else now,
                done_at=now if status == "done" else None,
            )
        )

    def effects(self) -> list[Effect]:
        return [self._effect(r) for r in self.c.execute(sa.select(outbox_t))]

    def take_lease(self, name: str, owner: str, now: int, ttl: int) -> bool:
        self.c.execute(_insert(self.c, leases_t).values(name=name, owner=owner, until=0))
        won = self.c.execute(
            sa.update(leases_t)
            .where(leases_t.c.name == name)
            .where(sa.or_(leases_t.c.owner == owner, leases_t.c.until <= now))
            .values(owner=owner, until=now + ttl)
        )
        return bool(won.rowcount)

    def timeline(self, customer: str) -> dict[str, list[dict[str, Any]]]:
        def rows(
            table: sa.Table, column: sa.Column[Any], order: sa.Column[Any]
        ) -> list[dict[str, Any]]:
            result = self.c.execute(sa.select(table).where(column == customer).order_by(order))
            return [dict(r._mapping) for r in result]

        events = rows(events_t, events_t.c.customer, events_t.c.received_at)
        for e in events:
            e["payload"] = json.loads(e["payload"])
        subs = rows(subs_t, subs_t.c.customer, subs_t.c.created)
        for s in subs:
            s["snapshot"] = json.loads(s["snapshot"])
        effects = [
            dict(r._mapping)
            for r in self.c.execute(
                sa.select(outbox_t)
                .join(intents_t, intents_t.c.id == outbox_t.c.intent_id)
                .where(intents_t.c.customer == customer)
            )
        ]
        return {
            "subscriptions": subs,
            "events": events,
            "transitions": rows(transitions_t, transitions_t.c.customer, transitions_t.c.id),
            "intents": rows(intents_t, intents_t.c.customer, intents_t.c.created_at),
            "facts": rows(facts_t, facts_t.c.customer, facts_t.c.observed_at),
            "outbox": effects,
        }


def billing_engine(engine: Engine) -> Engine:
    """The engine billing uses: PostgreSQL shares the app's; SQLite gets its own whose
    transactions BEGIN IMMEDIATE, with WAL and a busy timeout."""
    if engine.dialect.name != "sqlite":
        return engine
    own = sa.create_engine(
        engine.url, connect_args={"check_same_thread": False, "isolation_level": None}
    )

    @event.listens_for(own, "connect")
    def _pragma(dbapi_conn, _record):  # type: ignore[no-untyped-def]
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=15000")
        cursor.close()

    @event.listens_for(own, "begin")
    def _begin(conn):  # type: ignore[no-untyped-def]
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return own


class SqlBillingRepo:
    def __init__(self, engine: Engine) -> None:
        self.engine = billing_engine(engine)

    @contextmanager
    def transaction(self) -> Iterator[SqlTx]:
        with self.engine.begin() as conn:
            yield SqlTx(conn)

    def dispose(self) -> None:
        self.engine.dispose()
