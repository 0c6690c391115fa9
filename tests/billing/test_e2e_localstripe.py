"""End to end against localstripe (started here on 127.0.0.1): our code creates the customer
and the subscription, localstripe signs its webhooks and delivers every one twice (two
endpoints on one URL), we cancel through the outbox, and the customer comes back.

localstripe has plans rather than prices and no trials or dunning (those are covered by the
model-based tests), so the plan here has no trial.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from prometheus_client import REGISTRY
from starlette.applications import Starlette
from starlette.testclient import TestClient

from billing.model import AccountId
from billing.service import AlreadySubscribed, Billing
from server.app import create_app
from server.auth import Role, issue
from server.settings import Settings
from tests.server.live import free_port

from .localstripe import API_KEY, localstripe, register_webhook
from .stripe_setup import WEBHOOK_SECRET, add_card, client, make_plan

SECRET = "billing-e2e-secret-" + "cd" * 32
ADA = AccountId("tutor-ada")


@contextmanager
def serve(app: Starlette) -> Iterator[str]:
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive(), "server did not start"
        assert time.monotonic() < deadline, "server did not start in time"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)


def wait_for(check: Callable[[], bool], what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def events_total(outcome: str) -> float:
    return REGISTRY.get_sample_value("inkroom_billing_events_total", {"outcome": outcome}) or 0.0


def test_subscribe_cancel_and_return_against_localstripe(tmp_path: Path) -> None:
    with localstripe() as stripe_base:
        plan = make_plan(client(stripe_base), "plan_e2e_solo")
        plans = [
            {
                "key": "solo",
                "stripe_price": plan,
                "name": "Solo",
                "students_per_classroom": 2,
                "video": False,
                "trial_days": 0,
            }
        ]
        settings = Settings(
            data_dir=tmp_path,
            secret=SECRET,
            stripe_api_key=API_KEY,
            stripe_api_base=stripe_base,
            stripe_webhook_secrets=WEBHOOK_SECRET,
            billing_plans=json.dumps(plans),
            billing_outbox_interval=0.2,
        )
        app = create_app(settings)
        with serve(app) as base:
            for hook in ("first", "second"):  # every event delivered twice
                register_webhook(
                    stripe_base, hook, f"{base}/billing/stripe/webhook", WEBHOOK_SECRET
                )
            billing: Billing = app.state.inkroom.billing.billing
            token = issue(SECRET, classroom="x", role=Role.ADMIN, user_id="root")
            admin = {"Authorization": f"Bearer {token}"}
            http = TestClient(app)  # requests only; the lifespan is the live server's

            def view() -> dict[str, Any]:
                customer = billing.ensure_customer(ADA)
                r = http.get(f"/api/admin/billing/customers/{customer}", headers=admin)
                body: dict[str, Any] = r.json() if r.status_code == 200 else {}
                return body

            processed, duplicates = events_total("processed"), events_total("duplicate")
            customer = billing.ensure_customer(ADA, "ada@example.com")
            assert billing.ensure_customer(ADA) == customer
            add_card(client(stripe_base), customer)  # the card form Checkout would show
            first = billing.subscribe(ADA, "solo")
            wait_for(lambda: view().get("state") == "active", "the subscription's webhooks")
            assert billing.access(ADA).has_access
            with pytest.raises(AlreadySubscribed):
                billing.subscribe(ADA, "solo")

            # Cancel through the outbox; localstripe's deleted event arrives twice.
            assert billing.request_cancel(first)
            wait_for(lambda: view().get("state") == "canceled", "the cancel")
            assert not billing.access(ADA).has_access

            # Churned and returned: a new subscription, no trial, labelled returning.
            second = billing.subscribe(ADA, "solo")
            assert second != first
            wait_for(lambda: view().get("state") == "active", "the second subscription")
            access = billing.access(ADA)
            assert access.has_access
            assert access.label == "returning"
            wait_for(
                lambda: (
                    events_total("duplicate") - duplicates >= events_total("processed") - processed
                ),
                "the second copy of every event",
            )

            body = view()
            timeline = body["timeline"]
            subs = {s["id"]: s["state"] for s in timeline["subscriptions"]}
            assert subs == {first: "canceled", second: "active"}
            assert body["primary_subscription"] == second
            ids = [e["id"] for e in timeline["events"]]
            assert len(ids) == len(set(ids)) > 0
            assert not [t for t in timeline["transitions"] if t["forbidden"]]
            moves = [
                (t["subscription"], t["from_state"], t["to_state"]) for t in timeline["transitions"]
            ]
            assert (first, "active", "canceled") in moves
            assert (second, "none", "active") in moves
            kinds = sorted(i["kind"] for i in timeline["intents"])
            assert kinds == ["cancel", "subscribe", "subscribe"]
            assert all(i["status"] == "sent" for i in timeline["intents"])
            subscribes = [
                json.loads(i["params"]) for i in timeline["intents"] if i["kind"] == "subscribe"
            ]
            assert [p["trial_days"] for p in subscribes] == [0, 0]
            (effect,) = timeline["outbox"]
            assert effect["key"] == f"cancel:{first}"
            assert effect["status"] == "done"
