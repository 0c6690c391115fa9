"""A billing node in its own process, for the crash test.

``python -m tests.billing.crash_worker DB_URL API_BASE MODE SUBSCRIPTION``

* ``crash-before``: asks for a cancel (intent + outbox rows committed), then drains; just
  before the Stripe call it says ``ABOUT-TO-CALL`` and waits to be killed.
* ``crash-after``: the same, but the call is made and the process waits to be killed before
  the outbox row is marked done.
* ``drain``: drains until the outbox is empty (a restarted node), prints ``DONE n``.
"""

from __future__ import annotations

import sys
import time

from billing.adapters.sql_repo import SqlBillingRepo
from billing.adapters.stripe_gateway import StripeGateway
from billing.ports import Effect
from billing.service import Billing
from server.db import make_engine, migrate

API_KEY = "sk_test_inkroom_crash"


def _wait_to_be_killed(effect: Effect) -> None:
    print(f"ABOUT-TO-CALL {effect.key} {effect.intent_id}", flush=True)
    time.sleep(600)


def main() -> int:
    url, base, mode, subscription = sys.argv[1:5]
    engine = make_engine(url)
    migrate(engine)
    gateway = StripeGateway(API_KEY, base)
    billing = Billing(SqlBillingRepo(engine), gateway, {})
    if mode == "crash-before":
        billing.request_cancel(subscription)
        billing.before_call = _wait_to_be_killed
        billing.drain(lease=1)
        return 1
    if mode == "crash-after":
        billing.request_cancel(subscription)
        real = gateway.cancel_subscription

        def call_then_hang(subscription_id: str, *, idempotency_key: str) -> str:
            real(subscription_id, idempotency_key=idempotency_key)
            print(f"CALLED {idempotency_key}", flush=True)
            time.sleep(600)
            return "unreachable"

        gateway.cancel_subscription = call_then_hang  # type: ignore[method-assign]
        billing.drain(lease=1)
        return 1
    done = 0
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        done += billing.drain(lease=1)
        with billing.repo.transaction() as tx:
            if all(e.status == "done" for e in tx.effects()):
                break
        time.sleep(0.2)
    print(f"DONE {done}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
