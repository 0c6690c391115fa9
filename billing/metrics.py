"""Prometheus metrics of billing."""

from __future__ import annotations

from prometheus_client import Counter

TRANSITIONS = Counter(
    "inkroom_billing_transitions_total", "Subscription state changes", ["from_state", "to_state"]
)
FORBIDDEN = Counter(
    "inkroom_billing_forbidden_transitions_total",
    "Derived state changes refused by the transition table",
    ["from_state", "to_state"],
)
EVENTS = Counter("inkroom_billing_events_total", "Stripe webhook events", ["outcome"])
EFFECTS = Counter("inkroom_billing_effects_total", "Outbox effects executed", ["action", "outcome"])
DUPLICATE_LIVE = Counter(
    "inkroom_billing_duplicate_live_total", "Extra live subscriptions found and canceled"
)
