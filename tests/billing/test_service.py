"""The service over the model world: concurrency, checkout guard, returning customers, outbox."""

from __future__ import annotations

import threading

import pytest

from billing.memory import MemoryRepo
from billing.model import AccountId, Plan
from billing.service import AlreadySubscribed, Billing, Outcome
from billing.states import State

from .fake_stripe import PRICE, World, WorldStripe

PLANS = {"solo": Plan("solo", PRICE, "Solo", students_per_classroom=3, video=False, trial_days=14)}
ADA = AccountId("ada")


def make() -> tuple[World, Billing]:
    world = World()
    return world, Billing(MemoryRepo(), WorldStripe(world), PLANS, clock=lambda: world.now)


def test_one_event_from_many_threads_is_processed_once() -> None:
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


def test_checkout_twice_is_one_session_and_no_checkout_while_live() -> None:
    world, billing = make()
    first = billing.start_checkout(ADA, "solo", "https://x/ok", "https://x/no")
    again = billing.start_checkout(ADA, "solo", "https://x/ok", "https://x/no")
    assert first == again  # same intent, same Idempotency-Key, same session
    assert first.endswith("_14")  # a first-time customer gets the trial
    customer = billing.ensure_customer(ADA)
    world.create(customer, "trial")
    with pytest.raises(AlreadySubscribed):
        billing.start_checkout(ADA, "solo", "https://x/ok", "https://x/no")


def test_returning_customer_gets_no_second_trial() -> None:
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
    assert world.subs[again]["status"] == "active"  # paid from day one
    for event in world.events:
        billing.handle(event)
    access = billing.access(ADA)
    assert access.has_access
    assert access.label == "returning"


def test_cancel_asked_twice_calls_stripe_once() -> None:
    world, billing = make()
    sub = world.create("cus_a", "pay_ok")
    assert billing.request_cancel(sub)
    assert not billing.request_cancel(sub)  # same effect key: one outbox row
    assert billing.drain() == 1
    assert billing.drain() == 0
    assert sum(world.executed.values()) == 1
    assert world.subs[sub]["status"] == "canceled"


def test_effect_retried_after_a_lost_answer_uses_the_same_key() -> None:
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
