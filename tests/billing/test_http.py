"""The webhook and admin endpoints through the real app, re-fetching from localstripe, with
events signed by a test secret."""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from server.app import create_app
from server.auth import Role, issue
from server.settings import Settings
from tests.server.live import live_server

from .fake_stripe import World, WorldStripe
from .localstripe import API_KEY, localstripe
from .stripe_setup import (
    OLD_SECRET,
    WEBHOOK_SECRET,
    add_card,
    client,
    event,
    make_plan,
    plans_json,
    signed,
)

SECRET = "billing-http-secret-" + "ab" * 32
URL = "/billing/stripe/webhook"


@pytest.fixture(scope="module")
def stripe_base() -> Iterator[str]:
    with localstripe() as base:
        yield base


@pytest.fixture(scope="module")
def plan(stripe_base: str) -> str:
    return make_plan(client(stripe_base), "plan_http_solo")


def settings_for(tmp: Path, base: str, plan: str) -> Settings:
    return Settings(
        data_dir=tmp,
        secret=SECRET,
        stripe_api_key=API_KEY,
        stripe_api_base=base,
        stripe_webhook_secrets=f"{OLD_SECRET},{WEBHOOK_SECRET}",
        billing_plans=plans_json(plan),
        billing_outbox_interval=0.2,
    )


@pytest.fixture
def app_client(tmp_path: Path, stripe_base: str, plan: str) -> Iterator[TestClient]:
    with TestClient(create_app(settings_for(tmp_path, stripe_base, plan))) as c:
        yield c


def subscription(base: str, plan: str) -> dict[str, object]:
    c = client(base)
    customer = c.v1.customers.create(params={"metadata": {"account_id": secrets.token_hex(4)}})
    add_card(c, customer.id)
    sub = c.v1.subscriptions.create(params={"customer": customer.id, "items": [{"plan": plan}]})
    data: dict[str, object] = sub.to_dict()
    return data


def bearer(role: Role, user: str = "u1") -> dict[str, str]:
    return {"Authorization": f"Bearer {issue(SECRET, classroom='c1', role=role, user_id=user)}"}


def tutor_bearer(c: TestClient, email: str) -> dict[str, str]:
    """Signs up a tutor account; its session as a bearer token (billing is per account)."""
    r = c.post(
        "/api/auth/signup",
        json={"email": email, "password": "a long tutor password", "name": "Tutor", "bearer": True},
    )
    assert r.status_code == 201, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def admin_view(c: TestClient, customer: str) -> dict[str, object]:
    response = c.get(f"/api/admin/billing/customers/{customer}", headers=bearer(Role.ADMIN))
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


def test_bad_signature_stale_and_future_are_refused(
    app_client: TestClient, stripe_base: str, plan: str
) -> None:
    sub = subscription(stripe_base, plan)
    payload = event("customer.subscription.created", sub)
    now = time.time()
    cases = {
        "wrong secret": signed(payload, "whsec_wrong_" + "9" * 16),
        "stale": signed(payload, at=now - 301),
        "future": signed(payload, at=now + 301),
        "no header": {"Content-Type": "application/json"},
    }
    for name, headers in cases.items():
        response = app_client.post(URL, content=payload, headers=headers)
        assert response.status_code == 400, name
    tampered = payload.replace('"active"', '"trialing"')
    response = app_client.post(URL, content=tampered, headers=signed(payload))
    assert response.status_code == 400
    # Re-serialized JSON is not the signed body.
    reserialized = json.dumps(json.loads(payload), indent=1)
    assert app_client.post(URL, content=reserialized, headers=signed(payload)).status_code == 400
    # The rotated-out secret still verifies, so do deliveries signed with the new one.
    assert (
        app_client.post(URL, content=payload, headers=signed(payload, OLD_SECRET)).status_code
        == 200
    )
    again = app_client.post(URL, content=payload, headers=signed(payload))
    assert again.json()["duplicate"] is True
    view = admin_view(app_client, str(sub["customer"]))
    assert view["state"] == "active"
    assert view["has_access"] is True
    timeline = view["timeline"]
    assert isinstance(timeline, dict)
    assert len(timeline["events"]) == 1
    assert [(t["from_state"], t["to_state"]) for t in timeline["transitions"]] == [
        ("none", "active")
    ]


def test_out_of_order_deliveries_converge(
    app_client: TestClient, stripe_base: str, plan: str
) -> None:
    sub = subscription(stripe_base, plan)
    created = event("customer.subscription.created", sub)
    client(stripe_base).v1.subscriptions.cancel(str(sub["id"]))
    canceled = dict(sub, status="canceled")
    deleted = event("customer.subscription.deleted", canceled)
    # Same second, newest first, each twice: the stale "created" (payload: active) comes last.
    for payload in (deleted, deleted, created, created):
        response = app_client.post(URL, content=payload, headers=signed(payload))
        assert response.status_code == 200
    view = admin_view(app_client, str(sub["customer"]))
    assert view["state"] == "canceled"
    assert view["has_access"] is False
    timeline = view["timeline"]
    assert isinstance(timeline, dict)
    assert len(timeline["events"]) == 2
    transitions = timeline["transitions"]
    assert [(t["to_state"], t["forbidden"]) for t in transitions] == [("canceled", False)]


def test_admin_timeline_is_for_admins_only(
    app_client: TestClient, stripe_base: str, plan: str
) -> None:
    sub = subscription(stripe_base, plan)
    payload = event("customer.subscription.created", sub)
    app_client.post(URL, content=payload, headers=signed(payload))
    path = f"/api/admin/billing/customers/{sub['customer']}"
    assert app_client.get(path).status_code == 401
    assert app_client.get(path, headers=bearer(Role.TUTOR)).status_code == 403
    assert app_client.get(path, headers=bearer(Role.STUDENT)).status_code == 403
    assert (
        app_client.get(
            "/api/admin/billing/customers/cus_nobody", headers=bearer(Role.ADMIN)
        ).status_code
        == 404
    )
    # Accounts too: an admin account's session is let in, a tutor's is not.
    state = app_client.app.state.inkroom  # type: ignore[attr-defined]
    state.directory.create_account("root@example.org", "a long admin password", role="admin")
    r = app_client.post(
        "/api/auth/signin",
        json={"email": "root@example.org", "password": "a long admin password", "bearer": True},
    )
    admin_session = {"Authorization": f"Bearer {r.json()['token']}"}
    assert app_client.get(path, headers=admin_session).status_code == 200
    tutor_session = tutor_bearer(app_client, "tutor@example.org")
    assert app_client.get(path, headers=tutor_session).status_code == 403
    bad = {"Authorization": "Bearer not-a-session"}
    assert app_client.get(path, headers=bad).status_code == 401
    view = admin_view(app_client, str(sub["customer"]))
    timeline = view["timeline"]
    assert isinstance(timeline, dict)
    (stored,) = timeline["events"]
    assert stored["payload"]["type"] == "customer.subscription.created"
    assert stored["request_id"].startswith("req_")


@pytest.mark.anyio
async def test_one_event_delivered_concurrently_is_processed_once(
    tmp_path: Path, stripe_base: str, plan: str
) -> None:
    sub = subscription(stripe_base, plan)
    payload = event("customer.subscription.created", sub)
    settings = settings_for(tmp_path, stripe_base, plan)
    with live_server(settings) as ws_url:
        base = ws_url.replace("ws://", "http://")
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:

            async def deliver() -> dict[str, object]:
                response = await http.post(URL, content=payload, headers=signed(payload))
                assert response.status_code == 200
                body: dict[str, object] = response.json()
                return body

            results = await asyncio.gather(*(deliver() for _ in range(8)))
    assert sorted(bool(r["duplicate"]) for r in results) == [False] + [True] * 7
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'inkroom.db'}")
    with engine.connect() as conn:
        events = conn.execute(sa.text("SELECT count(*) FROM billing_event")).scalar()
        transitions = conn.execute(
            sa.text("SELECT count(*) FROM billing_transition WHERE subscription = :s"),
            {"s": sub["id"]},
        ).scalar()
    engine.dispose()
    assert (events, transitions) == (1, 1)


def test_without_a_key_billing_is_off_and_everything_is_free(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="inkroom.billing")
    with TestClient(create_app(Settings(data_dir=tmp_path, secret=SECRET))) as c:
        assert any("billing off" in r.getMessage() for r in caplog.records)
        payload = event("customer.subscription.created", {"id": "sub_x", "object": "subscription"})
        assert c.post(URL, content=payload, headers=signed(payload)).status_code == 404
        account = c.get("/api/billing/account", headers=tutor_bearer(c, "off@example.org")).json()
        assert account["has_access"] is True
        assert account["reason"] == "billing_off"
        gate = c.app.state.inkroom.billing  # type: ignore[attr-defined]
        assert gate.access_now("anyone").has_access


def test_checkout_portal_and_account_endpoints(app_client: TestClient) -> None:
    """localstripe has no Checkout or portal: the app's Stripe port is pointed at the model."""
    world = World(now=int(time.time()))
    billing = app_client.app.state.inkroom.billing.billing  # type: ignore[attr-defined]
    billing.stripe = WorldStripe(world)
    tutor = tutor_bearer(app_client, "bo@example.org")
    account_id = "acct-" + str(
        app_client.get("/api/auth/me", headers=tutor).json()["account"]["id"]
    )
    body = {"plan": "solo", "success_url": "https://x/ok", "cancel_url": "https://x/no"}
    assert app_client.post("/api/billing/checkout", json=body).status_code == 401
    student = app_client.post("/api/billing/checkout", json=body, headers=bearer(Role.STUDENT))
    assert student.status_code == 403
    assert (
        app_client.post("/api/billing/checkout", json={"plan": "gold"}, headers=tutor).status_code
        == 409
    )
    first = app_client.post("/api/billing/checkout", json=body, headers=tutor)
    assert first.status_code == 200
    again = app_client.post("/api/billing/checkout", json=body, headers=tutor)
    assert again.json()["url"] == first.json()["url"]  # a double click is one session
    account = app_client.get("/api/billing/account", headers=tutor).json()
    assert account["has_access"] is False
    assert account["status"] == "No subscription: start one to open your classrooms"
    # The tutor completes Checkout: Stripe creates a trialing subscription.
    customer = billing.ensure_customer(account_id)
    world.create(customer, "trial")
    refused = app_client.post("/api/billing/checkout", json=body, headers=tutor)
    assert refused.status_code == 409
    account = app_client.get("/api/billing/account", headers=tutor).json()
    assert account["has_access"] is True
    assert account["status"] == "Trial, 14 days left"
    # The home page offers Manage, not a second Checkout.
    assert (account["can_subscribe"], account["can_manage"]) == (False, True)
    portal = app_client.post(
        "/api/billing/portal", json={"return_url": "https://x/"}, headers=tutor
    )
    assert portal.status_code == 200
    assert portal.json()["url"].startswith("https://portal.example/")
    nobody = app_client.post(
        "/api/billing/portal", json={}, headers=tutor_bearer(app_client, "new@example.org")
    )
    assert nobody.status_code == 409
    # A tutor's access token speaks for the account that owns its classroom; a classroom
    # nobody owns has no account to bill.
    assert app_client.get("/api/billing/account", headers=bearer(Role.TUTOR)).status_code == 403
