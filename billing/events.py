"""Stripe events as triggers: what to re-fetch, never what to believe."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Event:
    """A verified Stripe event (its payload kept verbatim for the audit trail)."""

    id: str
    type: str
    created: int
    object: Mapping[str, Any]
    payload: str
    api_version: str | None = None
    request_id: str | None = None
    idempotency_key: str | None = None
    livemode: bool = False

    @classmethod
    def parse(cls, payload: str) -> Event:
        """Raises ``ValueError`` on a body that is not a Stripe event."""
        data = json.loads(payload)
        if not isinstance(data, dict) or data.get("object") != "event":
            raise ValueError("not a Stripe event")
        event_id, kind = data.get("id"), data.get("type")
        obj = (data.get("data") or {}).get("object")
        if not isinstance(event_id, str) or not isinstance(kind, str) or not isinstance(obj, dict):
            raise ValueError("malformed Stripe event")  # noqa: TRY004
        request = data.get("request")
        request_id = idempotency_key = None
        if isinstance(request, dict):
            request_id = _str(request.get("id"))
            idempotency_key = _str(request.get("idempotency_key"))
        elif isinstance(request, str):  # api versions before 2017-05-25
            request_id = request
        return cls(
            id=event_id,
            type=kind,
            created=int(data.get("created") or 0),
            object=obj,
            payload=payload,
            api_version=_str(data.get("api_version")),
            request_id=request_id,
            idempotency_key=idempotency_key,
            livemode=bool(data.get("livemode")),
        )


@dataclass(frozen=True, slots=True)
class Trigger:
    """What an event asks us to look at again."""

    customer: str | None = None
    subscription: str | None = None
    refund: str | None = None
    charge: str | None = None
    dispute: str | None = None
    account: str | None = None


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _id(value: object) -> str | None:
    """An id, whether Stripe sent it bare or expanded."""
    if isinstance(value, dict):
        return _str(value.get("id"))
    return _str(value)


def trigger_of(event: Event) -> Trigger:
    obj, kind = event.object, event.type
    customer = _id(obj.get("customer"))
    if kind.startswith("customer.subscription."):
        return Trigger(customer=customer, subscription=_id(obj.get("id")))
    if kind.startswith("customer.") and obj.get("object") == "customer":
        return Trigger(customer=_id(obj.get("id")))
    if kind.startswith("invoice."):
        sub = _id(obj.get("subscription"))
        if sub is None:  # API 2025-03-31.basil and later
            parent = obj.get("parent") or {}
            details = parent.get("subscription_details") if isinstance(parent, dict) else None
            if isinstance(details, dict):
                sub = _id(details.get("subscription"))
        return Trigger(customer=customer, subscription=sub)
    if kind.startswith("checkout.session."):
        return Trigger(
            customer=customer,
            subscription=_id(obj.get("subscription")),
            account=_str(obj.get("client_reference_id")),
        )
    if kind.startswith("charge.dispute."):
        return Trigger(customer=customer, dispute=_id(obj.get("id")))
    if kind in ("charge.refunded", "charge.refund.updated") and obj.get("object") == "charge":
        return Trigger(customer=customer, charge=_id(obj.get("id")))
    if kind.startswith(("refund.", "charge.refund.")):
        return Trigger(customer=customer, refund=_id(obj.get("id")), charge=_id(obj.get("charge")))
    if kind.startswith(("invoice_payment.", "payment_intent.", "charge.")):
        return Trigger(customer=customer)
    return Trigger(customer=customer)
