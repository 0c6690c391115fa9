"""Stripe objects (as JSON dicts) to the core's values: old (2017) and new (basil) shapes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .model import DisputeFact, RefundFact, Snapshot

# A refund we create to end a subscription carries these in its metadata.
ENDS_SUBSCRIPTION = "ends_subscription"
REFUND_LIVE = frozenset({"pending", "succeeded", "requires_action"})


def ident(value: object) -> str | None:
    if isinstance(value, Mapping):
        value = value.get("id")
    return value if isinstance(value, str) and value else None


def _int(value: object) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _first_item(sub: Mapping[str, Any]) -> Mapping[str, Any]:
    items = sub.get("items")
    data = items.get("data") if isinstance(items, Mapping) else None
    if isinstance(data, list) and data and isinstance(data[0], Mapping):
        return data[0]
    return {}


def invoice_subscription(invoice: Mapping[str, Any]) -> str | None:
    sub = ident(invoice.get("subscription"))
    if sub is None:
        parent = invoice.get("parent")
        if isinstance(parent, Mapping):
            details = parent.get("subscription_details")
            if isinstance(details, Mapping):
                sub = ident(details.get("subscription"))
    return sub


def invoice_finalized_at(invoice: Mapping[str, Any]) -> int | None:
    transitions = invoice.get("status_transitions")
    if isinstance(transitions, Mapping):
        at = _int(transitions.get("finalized_at"))
        if at is not None:
            return at
    return _int(invoice.get("created"))


def snapshot_of(
    sub: Mapping[str, Any], latest_invoice: Mapping[str, Any] | None = None
) -> Snapshot:
    """``latest_invoice`` (expanded or fetched) gives when a past-due period began."""
    item = _first_item(sub)
    price = ident(item.get("price")) or ident(item.get("plan")) or ident(sub.get("plan"))
    invoice = latest_invoice
    if invoice is None and isinstance(sub.get("latest_invoice"), Mapping):
        invoice = sub["latest_invoice"]
    past_due_since = invoice_finalized_at(invoice) if invoice else None
    if past_due_since is None and sub.get("status") == "past_due":
        past_due_since = _int(sub.get("current_period_start")) or _int(
            item.get("current_period_start")
        )
    charge = ident(invoice.get("charge")) if invoice else None
    return Snapshot(
        id=str(sub["id"]),
        customer=ident(sub.get("customer")) or "",
        status=str(sub.get("status") or ""),
        created=_int(sub.get("created")) or 0,
        plan=price,
        trial_start=_int(sub.get("trial_start")),
        trial_end=_int(sub.get("trial_end")),
        past_due_since=past_due_since if sub.get("status") == "past_due" else None,
        current_period_end=_int(sub.get("current_period_end"))
        or _int(item.get("current_period_end")),
        cancel_at_period_end=bool(sub.get("cancel_at_period_end")),
        latest_charge=charge,
    )


def refund_of(refund: Mapping[str, Any]) -> RefundFact | None:
    """Only a refund we tagged (a full refund meant to end the subscription) is a fact."""
    metadata = refund.get("metadata")
    if not isinstance(metadata, Mapping):
        return None
    subscription = metadata.get("subscription")
    if not isinstance(subscription, str) or not subscription:
        return None
    ends = str(metadata.get(ENDS_SUBSCRIPTION, "")).lower() == "true"
    return RefundFact(
        id=str(refund["id"]),
        subscription=subscription,
        customer=str(metadata.get("customer") or ""),
        ends_subscription=ends and refund.get("status") in REFUND_LIVE,
        created=_int(refund.get("created")) or 0,
    )


def dispute_of(dispute: Mapping[str, Any], subscription: str, customer: str) -> DisputeFact:
    return DisputeFact(
        id=str(dispute["id"]),
        subscription=subscription,
        customer=customer,
        status=str(dispute.get("status") or ""),
        created=_int(dispute.get("created")) or 0,
    )
