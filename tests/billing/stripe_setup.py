"""Test-side Stripe setup on localstripe (standing in for the dashboard and Checkout's card
form)."""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

import stripe

from billing.adapters.stripe_gateway import sign

from .localstripe import API_KEY

WEBHOOK_SECRET = "whsec_inkroom_test_" + "0" * 16
OLD_SECRET = "whsec_inkroom_rotated_" + "1" * 16


def client(base: str) -> stripe.StripeClient:
    return stripe.StripeClient(API_KEY, base_addresses={"api": base})


def make_plan(c: stripe.StripeClient, plan_id: str) -> str:
    product = c.v1.products.create(params={"name": f"Inkroom {plan_id}", "type": "service"})
    c.v1.plans.create(
        params={
            "id": plan_id,
            "product": product.id,
            "amount": 1500,
            "currency": "usd",
            "interval": "month",
        }
    )
    return plan_id


def add_card(c: stripe.StripeClient, customer: str) -> None:
    card: Any = {"number": "4242424242424242", "exp_month": 12, "exp_year": 2034, "cvc": "123"}
    pm = c.v1.payment_methods.create(params={"type": "card", "card": card})
    c.v1.payment_methods.attach(pm.id, params={"customer": customer})
    c.v1.customers.update(customer, params={"invoice_settings": {"default_payment_method": pm.id}})


def plans_json(plan_id: str) -> str:
    return json.dumps(
        [
            {
                "key": "solo",
                "stripe_price": plan_id,
                "name": "Solo",
                "students_per_classroom": 2,
                "video": False,
                "trial_days": 14,
            }
        ]
    )


def event(kind: str, obj: dict[str, Any], created: int | None = None) -> str:
    return json.dumps(
        {
            "id": "evt_" + secrets.token_hex(10),
            "object": "event",
            "api_version": "2017-08-15",
            "type": kind,
            "created": created if created is not None else int(time.time()),
            "livemode": False,
            "data": {"object": obj},
            "request": {"id": "req_" + secrets.token_hex(6), "idempotency_key": None},
        }
    )


def signed(payload: str, secret: str = WEBHOOK_SECRET, at: float | None = None) -> dict[str, str]:
    stamp = int(at if at is not None else time.time())
    return {"Stripe-Signature": sign(payload, secret, stamp), "Content-Type": "application/json"}
