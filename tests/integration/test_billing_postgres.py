"""The billing ledger on real PostgreSQL: the service scenarios, and one event delivered to
eight nodes at once (separate processes' locks: only the database dedupes and serializes)."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from sqlalchemy import Engine

from billing.adapters.sql_repo import SqlBillingRepo
from billing.service import Billing, Outcome
from server.db import migrate
from tests.billing import test_service
from tests.billing.fake_stripe import World, WorldStripe

pytestmark = pytest.mark.integration


def factory(engine: Engine) -> Callable[[], tuple[World, Billing]]:
    migrate(engine)

    def make() -> tuple[World, Billing]:
        world = World()
        repo = SqlBillingRepo(engine)
        return world, Billing(repo, WorldStripe(world), test_service.PLANS, clock=lambda: world.now)

    return make


@pytest.mark.parametrize(
    "scenario",
    [
        test_service.test_returning_customer_gets_no_second_trial,
        test_service.test_checkout_twice_is_one_session_and_no_checkout_while_live,
        test_service.test_cancel_asked_twice_calls_stripe_once,
        test_service.test_reconcile_converges_and_cancels_the_duplicate,
        test_service.test_reconcile_lease_one_node_at_a_time,
        test_service.test_a_forbidden_change_is_refused_recorded_and_counted,
    ],
    ids=lambda f: f.__name__,
)
def test_service_scenarios_on_postgres(pg_engine: Engine, scenario: Callable[..., None]) -> None:
    scenario(factory(pg_engine))


def test_one_event_on_eight_nodes_is_processed_once(pg_engine: Engine) -> None:
    make = factory(pg_engine)
    world, first = make()
    nodes = [first] + [
        Billing(SqlBillingRepo(pg_engine), WorldStripe(world), test_service.PLANS, node=f"n{i}")
        for i in range(7)
    ]
    world.create("cus_a", "pay_ok")
    event = world.events[0]
    outcomes: list[Outcome] = []
    barrier = threading.Barrier(len(nodes))

    def deliver(node: Billing) -> None:
        barrier.wait()
        outcomes.append(node.handle(event))

    threads = [threading.Thread(target=deliver, args=(n,)) for n in nodes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == [Outcome.DUPLICATE] * 7 + [Outcome.PROCESSED]
    with first.repo.transaction() as tx:
        timeline = tx.timeline("cus_a")
    assert len(timeline["events"]) == 1
    assert len(timeline["transitions"]) == 1
