"""A model of Stripe's subscription graph (the "world"), its events, and a StripePort over it.

The world moves along Stripe's own status graph (trial, payment success and failure, dunning,
unpaid, paused, cancel), takes refunds and disputes (won or lost), stamps events with a
one-second clock (so several share a second), and honours Idempotency-Keys like Stripe: a key
seen before answers with the first result and does nothing.
"""

from __future__ import annotations

import copy
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from billing.events import Event
from billing.model import AccountId, DisputeFact, RefundFact, Snapshot
from billing.stripe_objects import dispute_of, refund_of, snapshot_of

START = 1_800_000_000
CUSTOMERS = ("cus_a", "cus_b", "cus_c")
PRICE = "price_solo"

# Stripe's one-step status graph (docs: subscription statuses and their transitions).
GRAPH: dict[str, tuple[str, ...]] = {
    "incomplete": ("active", "incomplete_expired", "canceled"),
    "trialing": ("active", "past_due", "paused", "canceled"),
    "active": ("past_due", "canceled"),
    "past_due": ("active", "unpaid", "canceled", "past_due"),  # past_due again: a retry failed
    "unpaid": ("active", "canceled"),
    "paused": ("active", "canceled"),
    "canceled": (),
    "incomplete_expired": (),
}
LIVE = frozenset({"incomplete", "trialing", "active", "past_due", "unpaid", "paused"})
DISPUTE_PATHS: dict[str, tuple[str, ...]] = {
    "open": ("needs_response",),
    "review": ("needs_response", "under_review"),
    "won": ("needs_response", "under_review", "won"),
    "lost": ("needs_response", "lost"),
}


@dataclass
class World:
    now: int = START
    subs: dict[str, dict[str, Any]] = field(default_factory=dict)
    refunds: dict[str, dict[str, Any]] = field(default_factory=dict)
    disputes: dict[str, dict[str, Any]] = field(default_factory=dict)
    charges: dict[str, tuple[str, str]] = field(default_factory=dict)  # charge -> (sub, customer)
    charged: set[str] = field(default_factory=set)
    events: list[Event] = field(default_factory=list)
    # Idempotency: key -> the first answer; how many times each key had an effect.
    answers: dict[str, str] = field(default_factory=dict)
    executed: Counter[str] = field(default_factory=Counter)
    calls: int = 0
    _n: int = 0

    def _id(self, prefix: str) -> str:
        self._n += 1
        return f"{prefix}_{self._n:04d}"

    def advance(self, seconds: int) -> None:
        self.now += seconds

    def emit(self, kind: str, obj: dict[str, Any], idempotency_key: str | None = None) -> Event:
        body = {
            "id": self._id("evt"),
            "object": "event",
            "type": kind,
            "created": self.now,
            "api_version": "2026-10-28.endive",
            "livemode": False,
            "data": {"object": copy.deepcopy(obj)},
            "request": {
                "id": self._id("req") if idempotency_key else None,
                "idempotency_key": idempotency_key,
            },
        }
        event = Event.parse(json.dumps(body))
        self.events.append(event)
        return event

    # --- the world's moves ---------------------------------------------------------------

    def create(self, customer: str, kind: str) -> str:
        """``kind``: trial, pay_ok or pay_fail (first payment fails: incomplete)."""
        sub_id = self._id("sub")
        status = {"trial": "trialing", "pay_ok": "active", "pay_fail": "incomplete"}[kind]
        sub: dict[str, Any] = {
            "id": sub_id,
            "object": "subscription",
            "customer": customer,
            "status": status,
            "created": self.now,
            "trial_start": self.now if kind == "trial" else None,
            "trial_end": self.now + 14 * 86_400 if kind == "trial" else None,
            "cancel_at_period_end": False,
            "current_period_end": self.now + 30 * 86_400,
            "items": {"data": [{"price": {"id": PRICE}}]},
            "latest_invoice": {"id": self._id("in"), "status_transitions": {}, "charge": None},
        }
        self.subs[sub_id] = sub
        self.emit("customer.subscription.created", sub)
        if kind == "pay_ok":
            self._charge(sub)
        elif kind == "pay_fail":
            self.emit("invoice.payment_failed", self._invoice(sub))
        return sub_id

    def _invoice(self, sub: dict[str, Any]) -> dict[str, Any]:
        invoice = dict(sub["latest_invoice"])
        invoice.update(
            {"object": "invoice", "customer": sub["customer"], "subscription": sub["id"]}
        )
        return invoice

    def _charge(self, sub: dict[str, Any]) -> None:
        charge = self._id("ch")
        self.charges[charge] = (sub["id"], sub["customer"])
        self.charged.add(sub["id"])
        sub["latest_invoice"] = {
            "id": self._id("in"),
            "status_transitions": {"finalized_at": self.now},
            "charge": charge,
        }
        self.emit("invoice.paid", self._invoice(sub))

    def step(self, sub_id: str, to: str) -> bool:
        sub = self.subs[sub_id]
        if to not in GRAPH[sub["status"]]:
            return False
        before = sub["status"]
        if to == "active":
            self._charge(sub)
        elif to == "past_due":
            sub["latest_invoice"] = {
                "id": self._id("in"),
                "status_transitions": {"finalized_at": self.now},
                "charge": None,
            }
            self.emit("invoice.payment_failed", self._invoice(sub))
        sub["status"] = to
        if to == "canceled":
            self.emit("customer.subscription.deleted", sub)
        elif to == "paused":
            self.emit("customer.subscription.paused", sub)
        elif before == "paused" and to == "active":
            self.emit("customer.subscription.resumed", sub)
        else:
            self.emit("customer.subscription.updated", sub)
        return True

    def _latest_charge(self, sub_id: str) -> str | None:
        charges = [c for c, (s, _) in self.charges.items() if s == sub_id]
        return charges[-1] if charges else None

    def refund(self, sub_id: str) -> bool:
        """Support refunds a charge in full, tagged to end the subscription."""
        charge = self._latest_charge(sub_id)
        if charge is None:
            return False
        customer = self.subs[sub_id]["customer"]
        refund: dict[str, Any] = {
            "id": self._id("re"),
            "object": "refund",
            "charge": charge,
            "status": "succeeded",
            "created": self.now,
            "metadata": {"ends_subscription": "true", "subscription": sub_id, "customer": customer},
        }
        self.refunds[refund["id"]] = refund
        self.emit("refund.created", refund)
        self.emit("charge.refunded", {"id": charge, "object": "charge", "customer": customer})
        return True

    def dispute(self, sub_id: str) -> str | None:
        charge = self._latest_charge(sub_id)
        if charge is None:
            return None
        dispute: dict[str, Any] = {
            "id": self._id("dp"),
            "object": "dispute",
            "charge": charge,
            "status": "needs_response",
            "created": self.now,
        }
        self.disputes[dispute["id"]] = dispute
        self.emit("charge.dispute.created", dispute)
        return str(dispute["id"])

    def dispute_to(self, dispute_id: str, status: str) -> None:
        dispute = self.disputes[dispute_id]
        dispute["status"] = status
        closed = status in ("won", "lost")
        self.emit("charge.dispute.closed" if closed else "charge.dispute.updated", dispute)

    # --- what the world says now ---------------------------------------------------------

    def live_subs(self, customer: str) -> list[str]:
        return [
            s["id"] for s in self.subs.values() if s["customer"] == customer and s["status"] in LIVE
        ]

    def refund_facts(self) -> list[RefundFact]:
        facts = [refund_of(r) for r in self.refunds.values()]
        return [f for f in facts if f is not None]

    def dispute_facts(self) -> list[DisputeFact]:
        return [self._dispute_fact(d) for d in self.disputes.values()]

    def _dispute_fact(self, dispute: dict[str, Any]) -> DisputeFact:
        sub, customer = self.charges[dispute["charge"]]
        return dispute_of(dispute, sub, customer)


class WorldStripe:
    """:class:`billing.ports.StripePort` answered by the world, as Stripe's API would."""

    def __init__(self, world: World) -> None:
        self.world = world

    def list_subscriptions(self, *, customer: str | None = None) -> list[Snapshot]:
        return [
            snapshot_of(copy.deepcopy(s))
            for s in self.world.subs.values()
            if customer is None or s["customer"] == customer
        ]

    def fetch_subscription(self, subscription_id: str) -> Snapshot | None:
        sub = self.world.subs.get(subscription_id)
        return snapshot_of(copy.deepcopy(sub)) if sub else None

    def fetch_refund(self, refund_id: str) -> RefundFact | None:
        refund = self.world.refunds.get(refund_id)
        return refund_of(refund) if refund else None

    def refunds_of_charge(self, charge_id: str) -> list[RefundFact]:
        facts = [refund_of(r) for r in self.world.refunds.values() if r["charge"] == charge_id]
        return [f for f in facts if f is not None]

    def list_refunds(self) -> list[RefundFact]:
        return self.world.refund_facts()

    def fetch_dispute(self, dispute_id: str) -> DisputeFact | None:
        dispute = self.world.disputes.get(dispute_id)
        return self.world._dispute_fact(dispute) if dispute else None

    def list_disputes(self) -> list[DisputeFact]:
        return self.world.dispute_facts()

    def _once(self, key: str) -> str | None:
        self.world.calls += 1
        return self.world.answers.get(key)

    def create_customer(
        self, account: AccountId, email: str | None, *, idempotency_key: str
    ) -> str:
        seen = self._once(idempotency_key)
        if seen is not None:
            return seen
        self.world.executed[idempotency_key] += 1
        customer = f"cus_{account}"
        self.world.answers[idempotency_key] = customer
        return customer

    def create_subscription(
        self, customer: str, price: str, *, trial_days: int, idempotency_key: str
    ) -> str:
        seen = self._once(idempotency_key)
        if seen is not None:
            return seen
        self.world.executed[idempotency_key] += 1
        sub = self.world.create(customer, "trial" if trial_days else "pay_ok")
        self.world.answers[idempotency_key] = sub
        return sub

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
        seen = self._once(idempotency_key)
        if seen is None:
            self.world.executed[idempotency_key] += 1
            seen = f"cs_{len(self.world.answers):04d}_{trial_days}"
            self.world.answers[idempotency_key] = seen
        return seen, f"https://checkout.example/{seen}"

    def create_portal_session(
        self, customer: str, return_url: str, *, idempotency_key: str
    ) -> tuple[str, str]:
        seen = self._once(idempotency_key)
        if seen is None:
            self.world.executed[idempotency_key] += 1
            seen = f"bps_{len(self.world.answers):04d}"
            self.world.answers[idempotency_key] = seen
        return seen, f"https://portal.example/{seen}"

    def cancel_subscription(self, subscription_id: str, *, idempotency_key: str) -> str:
        seen = self._once(idempotency_key)
        if seen is not None:
            return seen
        self.world.executed[idempotency_key] += 1
        sub = self.world.subs[subscription_id]
        if sub["status"] in LIVE:
            sub["status"] = "canceled"
            self.world.emit("customer.subscription.deleted", sub, idempotency_key)
        self.world.answers[idempotency_key] = str(sub["status"])
        return str(sub["status"])

    def refund_charge(
        self, charge_id: str, *, subscription: str, ends_subscription: bool, idempotency_key: str
    ) -> str:
        seen = self._once(idempotency_key)
        if seen is not None:
            return seen
        self.world.executed[idempotency_key] += 1
        self.world.refund(subscription)
        refund_id = list(self.world.refunds)[-1]
        self.world.answers[idempotency_key] = refund_id
        return refund_id
