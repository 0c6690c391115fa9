"""The only module that talks to the stripe SDK: API calls and webhook signature checks."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import stripe

from ..events import Event
from ..model import AccountId, DisputeFact, RefundFact, Snapshot
from ..ports import StripeError
from ..stripe_objects import (
    ENDS_SUBSCRIPTION,
    dispute_of,
    ident,
    invoice_subscription,
    refund_of,
    snapshot_of,
)

DEFAULT_TOLERANCE = 300


class BadSignature(Exception):
    """The body is not a Stripe event signed by one of our secrets within the tolerance."""


def _timestamp(header: str) -> int:
    for part in header.split(","):
        key, _, value = part.partition("=")
        if key.strip() == "t":
            return int(value)
    raise BadSignature("no timestamp in Stripe-Signature")


def verify_webhook(
    payload: bytes,
    header: str | None,
    secrets: Sequence[str],
    *,
    tolerance: int = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> Event:
    """Checks the signature over the raw body against each secret (rotation), refuses
    timestamps outside ``tolerance`` in either direction (the SDK only checks the past).

    Raises:
        BadSignature: with a reason that never echoes a secret.
    """
    if not header:
        raise BadSignature("missing Stripe-Signature header")
    if not secrets:
        raise BadSignature("no webhook secret configured")
    try:
        text = payload.decode("utf-8")
        stamp = _timestamp(header)
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadSignature("malformed Stripe-Signature header or body") from exc
    current = time.time() if now is None else now
    if stamp > current + tolerance:
        raise BadSignature("timestamp in the future")
    if stamp < current - tolerance:
        raise BadSignature("timestamp too old")
    for secret in secrets:
        try:
            stripe.WebhookSignature.verify_header(text, header, secret, tolerance)
        except stripe.SignatureVerificationError:
            continue
        try:
            return Event.parse(text)
        except ValueError as exc:
            raise BadSignature(f"signed body is not an event: {exc}") from exc
    raise BadSignature("no signature matches")


def sign(payload: str, secret: str, timestamp: int | None = None) -> str:
    """A ``Stripe-Signature`` header (tests sign their own events with it)."""
    header: str = stripe.WebhookSignature.generate_signature_header(payload, secret, timestamp)
    return header


def _dict(obj: Any) -> dict[str, Any]:
    data: dict[str, Any] = obj.to_dict()
    return data


class StripeGateway:
    """:class:`billing.ports.StripePort` over ``stripe.StripeClient``; ``api_base`` points it at
    a local server in tests."""

    def __init__(self, api_key: str, api_base: str | None = None) -> None:
        addresses: Any = {"api": api_base} if api_base else None
        self.client = stripe.StripeClient(api_key, base_addresses=addresses, max_network_retries=2)

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """A 404 is "no such object" (or, on a local stand-in, "no such resource"): None."""
        try:
            return fn(*args, **kwargs)
        except stripe.StripeError as exc:
            if exc.http_status == 404:
                return None
            raise StripeError(f"{type(exc).__name__}: {exc.user_message or exc.code}") from exc

    def _snapshot(self, sub: Mapping[str, Any]) -> Snapshot:
        invoice: Mapping[str, Any] | None = None
        latest = sub.get("latest_invoice")
        if sub.get("status") == "past_due" and isinstance(latest, str):
            fetched = self._call(self.client.v1.invoices.retrieve, latest)
            invoice = _dict(fetched) if fetched is not None else None
        return snapshot_of(sub, invoice)

    def list_subscriptions(self, *, customer: str | None = None) -> list[Snapshot]:
        params: dict[str, Any] = {"status": "all", "limit": 100}
        if customer:
            params["customer"] = customer
        page = self._call(self.client.v1.subscriptions.list, params=params)
        if page is None:
            return []
        return [self._snapshot(_dict(s)) for s in page.auto_paging_iter()]

    def fetch_subscription(self, subscription_id: str) -> Snapshot | None:
        sub = self._call(self.client.v1.subscriptions.retrieve, subscription_id)
        return self._snapshot(_dict(sub)) if sub is not None else None

    def fetch_refund(self, refund_id: str) -> RefundFact | None:
        refund = self._call(self.client.v1.refunds.retrieve, refund_id)
        return refund_of(_dict(refund)) if refund is not None else None

    def refunds_of_charge(self, charge_id: str) -> list[RefundFact]:
        page = self._call(self.client.v1.refunds.list, params={"charge": charge_id, "limit": 100})
        facts = [refund_of(_dict(r)) for r in page.auto_paging_iter()] if page else []
        return [f for f in facts if f is not None]

    def list_refunds(self) -> list[RefundFact]:
        page = self._call(self.client.v1.refunds.list, params={"limit": 100})
        facts = [refund_of(_dict(r)) for r in page.auto_paging_iter()] if page else []
        return [f for f in facts if f is not None and f.ends_subscription]

    def _dispute(self, dispute: Mapping[str, Any]) -> DisputeFact | None:
        charge_id = ident(dispute.get("charge"))
        if charge_id is None:
            return None
        charge = self._call(self.client.v1.charges.retrieve, charge_id)
        if charge is None:
            return None
        charge_d = _dict(charge)
        invoice_id = ident(charge_d.get("invoice"))
        subscription = None
        if invoice_id:
            invoice = self._call(self.client.v1.invoices.retrieve, invoice_id)
            subscription = invoice_subscription(_dict(invoice)) if invoice is not None else None
        if subscription is None:
            return None
        return dispute_of(dispute, subscription, ident(charge_d.get("customer")) or "")

    def fetch_dispute(self, dispute_id: str) -> DisputeFact | None:
        dispute = self._call(self.client.v1.disputes.retrieve, dispute_id)
        return self._dispute(_dict(dispute)) if dispute is not None else None

    def list_disputes(self) -> list[DisputeFact]:
        page = self._call(self.client.v1.disputes.list, params={"limit": 100})
        facts = [self._dispute(_dict(d)) for d in page.auto_paging_iter()] if page else []
        return [f for f in facts if f is not None]

    def create_customer(
        self, account: AccountId, email: str | None, *, idempotency_key: str
    ) -> str:
        params: dict[str, Any] = {"metadata": {"account_id": account}}
        if email:
            params["email"] = email
        customer = self._call(
            self.client.v1.customers.create,
            params=params,
            options={"idempotency_key": idempotency_key},
        )
        return str(customer.id)

    def create_subscription(
        self, customer: str, price: str, *, trial_days: int, idempotency_key: str
    ) -> str:
        # ``plan`` items work on Stripe and on localstripe (which has no prices).
        params: dict[str, Any] = {
            "customer": customer,
            "items": [{"plan": price}],
            "metadata": {"intent_id": idempotency_key},
        }
        if trial_days > 0:
            params["trial_period_days"] = trial_days
        sub = self._call(
            self.client.v1.subscriptions.create,
            params=params,
            options={"idempotency_key": idempotency_key},
        )
        return str(sub.id)

    def create_checkout_session(
        self,
        customer: str,
        price: str,
        *,
        trial_days: int,
        success_url: str,
        cancel_url: str,
        client_reference_id: str,
        idempotency_key: str,
    ) -> tuple[str, str]:
        params: dict[str, Any] = {
            "mode": "subscription",
            "customer": customer,
            "line_items": [{"price": price, "quantity": 1}],
            "success_url": success_url,
            "cancel_url": cancel_url,
            "client_reference_id": client_reference_id,
            "metadata": {"intent_id": idempotency_key},
        }
        if trial_days > 0:
            params["subscription_data"] = {"trial_period_days": trial_days}
        session = self._call(
            self.client.v1.checkout.sessions.create,
            params=params,
            options={"idempotency_key": idempotency_key},
        )
        if session is None:
            raise StripeError("Checkout is not available on this Stripe API")
        return str(session.id), str(session.url)

    def create_portal_session(
        self, customer: str, return_url: str, *, idempotency_key: str
    ) -> tuple[str, str]:
        session = self._call(
            self.client.v1.billing_portal.sessions.create,
            params={"customer": customer, "return_url": return_url},
            options={"idempotency_key": idempotency_key},
        )
        if session is None:
            raise StripeError("the customer portal is not available on this Stripe API")
        return str(session.id), str(session.url)

    def cancel_subscription(self, subscription_id: str, *, idempotency_key: str) -> str:
        sub = self._call(
            self.client.v1.subscriptions.cancel,
            subscription_id,
            options={"idempotency_key": idempotency_key},
        )
        return str(sub.status) if sub is not None else "missing"

    def refund_charge(
        self, charge_id: str, *, subscription: str, ends_subscription: bool, idempotency_key: str
    ) -> str:
        charge = self._call(self.client.v1.charges.retrieve, charge_id)
        customer = ident(_dict(charge).get("customer")) if charge is not None else None
        refund = self._call(
            self.client.v1.refunds.create,
            params={
                "charge": charge_id,
                "metadata": {
                    ENDS_SUBSCRIPTION: "true" if ends_subscription else "false",
                    "subscription": subscription,
                    "customer": customer or "",
                    "intent_id": idempotency_key,
                },
            },
            options={"idempotency_key": idempotency_key},
        )
        return str(refund.id)
