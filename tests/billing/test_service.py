"""The service over the model world: concurrency, checkout guard, returning customers, outbox."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from billing.adapters.sql_repo import SqlBillingRepo
from billing.memory import MemoryRepo
from billing.model import AccountId, Plan
from billing.ports import BillingRepo
from billing.service import AlreadySubscribed, Billing, Outcome
from billing.states import State
from server.db import make_engine, migrate

from .fake_stripe import PRICE, World, WorldStripe

PLANS = {"solo": Plan("solo", PRICE, "Solo", students_per_classroom=3, video=False, trial_days=14)}
ADA = AccountId("ada")


Make = Callable[[], tuple[World, Billing]]


@pytest.fixture(params=["memory", "sqlite"])
def make(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Make]:
    """The same scenarios on the in-memory ledger and on the SQL adapter (migrated SQLite)."""
    engines: list[Engine] = []

    def factory() -> tuple[World, Billing]:
        world = World()
        repo: BillingRepo
        if request.param == "memory":
            repo = MemoryRepo()
        else:
            engine = make_engine(f"sqlite:///{tmp_path / f'b{len(engines)}.db'}")
            migrate(engine)
            engines.append(engine)
            sql = SqlBillingRepo(engine)
            engines.append(sql.engine)
            repo = sql
        return world, Billing(repo, WorldStripe(world), PLANS, clock=lambda: world.now)

    yield factory
    for engine in engines:
        engine.dispose()


def test_one_event_from_many_threads_is_processed_once(make: Make) -> None:
    world, billing = make()
    world.create("cus_a", "pay_ok")
    event = world.events[0]
    outcomes: list[Outcome] = []
    barrier = threading.Barrier(8)

    def deliver() -> None:
        barrier.wait()
        outcomes.append(billing.handle(event))

    threads = [threading.Thread(target=deliver) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == [Outcome.DUPLICATE] * 7 + [Outcome.PROCESSED]


def test_checkout_twice_is_one_session_and_no_checkout_while_live(make: Make) -> None:
    world, billing = make()
    first = billing.start_checkout(ADA, "solo", "https://x/ok", "https://x/no")
    again = billing.start_checkout(ADA, "solo", "https://x/ok", "https://x/no")
    assert first == again  # same intent, same Idempotency-Key, same session
    assert first.endswith("_14")  # a first-time customer gets the trial
    customer = billing.ensure_customer(ADA)
    world.create(customer, "trial")
    with pytest.raises(AlreadySubscribed):
        billing.start_checkout(ADA, "solo", "https://x/ok", "https://x/no")


def test_returning_customer_gets_no_second_trial(make: Make) -> None:
    world, billing = make()
    sub = billing.subscribe(ADA, "solo")
    assert world.subs[sub]["status"] == "trialing"
    for event in world.events:
        billing.handle(event)
    assert billing.access(ADA).has_access
    assert billing.request_cancel(sub)
    billing.drain()
    for event in world.events:
        billing.handle(event)
    assert billing.access(ADA).state is State.CANCELED
    assert not billing.access(ADA).has_access
    again = billing.subscribe(ADA, "solo")
    assert again != sub
    assert world.subs[again]["status"] == "active"  # paid from day one
    for event in world.events:
        billing.handle(event)
    access = billing.access(ADA)
    assert access.has_access
    assert access.label == "returning"


def test_cancel_asked_twice_calls_stripe_once(make: Make) -> None:
    world, billing = make()
    sub = world.create("cus_a", "pay_ok")
    assert billing.request_cancel(sub)
    assert not billing.request_cancel(sub)  # same effect key: one outbox row
    assert billing.drain() == 1
    assert billing.drain() == 0
    assert sum(world.executed.values()) == 1
    assert world.subs[sub]["status"] == "canceled"


def test_effect_retried_after_a_lost_answer_uses_the_same_key(make: Make) -> None:
    world, billing = make()
    sub = world.create("cus_a", "pay_ok")
    billing.request_cancel(sub)
    stripe = billing.stripe
    assert isinstance(stripe, WorldStripe)
    real = stripe.cancel_subscription

    def lost_answer(subscription_id: str, *, idempotency_key: str) -> str:
        real(subscription_id, idempotency_key=idempotency_key)
        raise ConnectionError("the answer was lost")

    stripe.cancel_subscription = lost_answer  # type: ignore[method-assign]
    billing.drain()
    stripe.cancel_subscription = real  # type: ignore[method-assign]
    world.subs[sub]["status"] = "active"  # make the worker call again (as if the look-up lagged)
    billing.drain()
    assert len(world.executed) == 1
    assert list(world.executed.values()) == [1]
    assert world.calls == 2


def test_reconcile_converges_and_cancels_the_duplicate(make: Make) -> None:
    world, billing = make()
    first = world.create("cus_a", "pay_ok")
    twin = world.create("cus_a", "pay_ok")
    refunded = world.create("cus_b", "pay_ok")
    world.refund(refunded)
    billing.reconcile()  # no event was delivered
    billing.drain()
    billing.reconcile()
    assert world.live_subs("cus_a") == [first]
    assert world.live_subs("cus_b") == []
    with billing.repo.transaction() as tx:
        states = {s: tx.get_sub(s) for s in (first, twin, refunded)}
        effects = tx.effects()
    assert {k: v.state for k, v in states.items() if v} == {
        first: State.ACTIVE,
        twin: State.CANCELED,
        refunded: State.REFUNDED,
    }
    assert sorted(e.key for e in effects) == sorted([f"cancel:{twin}", f"cancel:{refunded}"])
    assert all(e.status == "done" for e in effects)
    assert sum(world.executed.values()) == 2


def test_reconcile_lease_one_node_at_a_time(make: Make) -> None:
    world, billing = make()
    other = Billing(billing.repo, billing.stripe, PLANS, clock=lambda: world.now, node="other")
    assert billing.reconcile_if_leader(ttl=60)
    assert not other.reconcile_if_leader(ttl=60)
    assert billing.reconcile_if_leader(ttl=60)  # the holder renews
    world.advance(61)
    assert other.reconcile_if_leader(ttl=60)


def test_a_forbidden_change_is_refused_recorded_and_counted(make: Make) -> None:
    """If Stripe ever showed a canceled subscription live again (a stale read, a bug), the
    state stays canceled: the change is kept out, logged, counted and written down."""
    from prometheus_client import REGISTRY

    labels = {"from_state": "canceled", "to_state": "active"}
    before = REGISTRY.get_sample_value("inkroom_billing_forbidden_transitions_total", labels) or 0
    world, billing = make()
    sub = world.create("cus_a", "pay_ok")
    world.step(sub, "canceled")
    for event in world.events:
        billing.handle(event)
    world.subs[sub]["status"] = "active"  # not on Stripe's graph
    billing.handle(world.emit("customer.subscription.updated", world.subs[sub]))
    assert not billing.access_of_customer("cus_a").has_access
    with billing.repo.transaction() as tx:
        stored = tx.get_sub(sub)
        timeline = tx.timeline("cus_a")
    assert stored is not None
    assert stored.state is State.CANCELED
    last = timeline["transitions"][-1]
    assert (last["from_state"], last["to_state"], bool(last["forbidden"])) == (
        "canceled",
        "active",
        True,
    )
    after = REGISTRY.get_sample_value("inkroom_billing_forbidden_transitions_total", labels)
    assert after == before + 1
