"""Derive, do not apply: the state is a pure function of the re-fetched snapshot, facts and clock.

Also the one access decision (:func:`decide_access`) and the words shown for a state.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from .model import NOTHING, Access, Entitlements, Plan, Snapshot, SubFacts
from .states import ACCESS, LIVE, TERMINAL, State

DAY = 86_400
DEFAULT_GRACE = 7 * DAY

_BY_STATUS: Mapping[str, State] = {
    "incomplete": State.PENDING_PAYMENT,
    "incomplete_expired": State.EXPIRED,
    "trialing": State.TRIALING,
    "active": State.ACTIVE,
    "unpaid": State.LAPSED,
    "paused": State.LAPSED,
    "canceled": State.CANCELED,
}


def derive(
    snapshot: Snapshot | None, facts: SubFacts, now: int, grace: int = DEFAULT_GRACE
) -> State:
    """The state of one subscription. Facts outrank Stripe's status: a lost dispute revokes,
    a refund that ends the subscription refunds, whatever Stripe still says."""
    if facts.dispute_lost:
        return State.REVOKED
    if facts.refunded:
        return State.REFUNDED
    if snapshot is None:
        return State.NONE
    if snapshot.status == "past_due":
        since = snapshot.past_due_since
        if since is None or now < since + grace:
            return State.GRACE
        return State.LAPSED
    # An unknown status (a newer API) is not trusted with access.
    return _BY_STATUS.get(snapshot.status, State.LAPSED)


def sub_has_access(state: State, facts: SubFacts) -> bool:
    return state in ACCESS and not facts.dispute_open


@dataclass(frozen=True, slots=True)
class SubView:
    """A subscription as the ledger holds it: the last snapshot, its facts and kept state."""

    snapshot: Snapshot
    facts: SubFacts
    state: State

    def current(self, now: int, grace: int) -> State:
        """The kept state moved on by the clock: grace that ran out is lapsed, even before the
        scheduler's tick records it. Nothing else changes at read time."""
        if (
            self.state is State.GRACE
            and derive(self.snapshot, self.facts, now, grace) is State.LAPSED
        ):
            return State.LAPSED
        return self.state


def _primary_key(view: SubView) -> tuple[int, int, str]:
    order = 0 if view.state in ACCESS else 1 if view.state is State.LAPSED else 2
    return (order, view.snapshot.created, view.snapshot.id)


def primary(views: Sequence[SubView]) -> SubView | None:
    """The subscription that speaks for the customer: the best live one (access first, then the
    oldest), else the most recent ended one."""
    live = [v for v in views if v.state in LIVE]
    if live:
        return min(live, key=_primary_key)
    if views:
        return max(views, key=lambda v: (v.snapshot.created, v.snapshot.id))
    return None


def duplicates(views: Sequence[SubView]) -> list[SubView]:
    """Live subscriptions beyond the primary one: to be canceled (from a job at quiescence,
    never from a single event, whose order would decide which one survives)."""
    first = primary(views)
    return [
        v
        for v in views
        if first is not None and v is not first and v.state in LIVE and v.snapshot.stripe_live
    ]


def label(views: Sequence[SubView]) -> str:
    has_live = any(v.state in LIVE for v in views)
    has_ended = any(v.state in TERMINAL for v in views)
    if has_live and has_ended:
        return "returning"
    if has_live:
        return "live"
    if has_ended:
        return "churned"
    return "prospect"


def trial_eligible(views: Sequence[SubView]) -> bool:
    """One free trial per customer: a churned-and-returned customer pays from day one."""
    return not views


def _date(ts: int) -> str:
    d = datetime.fromtimestamp(ts, UTC)
    return f"{d.day} {d:%B %Y}"


def describe(view: SubView | None, now: int, grace: int = DEFAULT_GRACE) -> str:
    """The state in words, for the tutor's home page."""
    if view is None:
        return "No subscription: start one to open your classrooms"
    state, snap = view.current(now, grace), view.snapshot
    if view.facts.dispute_open and state in ACCESS:
        return "A payment is disputed: your classrooms are closed until it is resolved"
    if state is State.TRIALING:
        if snap.trial_end is not None:
            days = max(0, -(-(snap.trial_end - now) // DAY))
            return f"Trial, {days} day{'s' if days != 1 else ''} left"
        return "Trial"
    if state is State.ACTIVE:
        if snap.cancel_at_period_end and snap.current_period_end:
            return f"Active, ends on {_date(snap.current_period_end)}"
        if snap.current_period_end:
            return f"Active, renews on {_date(snap.current_period_end)}"
        return "Active"
    if state is State.GRACE:
        since = snap.past_due_since if snap.past_due_since is not None else now
        return f"Payment failed: update your card by {_date(since + grace)}"
    if state is State.LAPSED:
        if snap.status == "paused":
            return "Trial ended without a card: add one to reopen your classrooms"
        return "Payment failed: update your card to reopen your classrooms"
    if state is State.PENDING_PAYMENT:
        return "Waiting for the first payment to go through"
    if state is State.CANCELED:
        return "Subscription canceled: subscribe again to reopen your classrooms"
    if state is State.EXPIRED:
        return "The first payment did not go through: subscribe again"
    if state is State.REFUNDED:
        return "Subscription refunded: subscribe again to reopen your classrooms"
    if state is State.REVOKED:
        return "Access revoked after a lost payment dispute: contact support"
    return "No subscription: start one to open your classrooms"


STUDENT_REFUSAL = (
    "This classroom is closed for now: the tutor's subscription needs attention. "
    "Your tutor has been told what to fix."
)


def decide_access(
    views: Sequence[SubView],
    plans: Mapping[str, Plan],
    now: int,
    grace: int = DEFAULT_GRACE,
) -> Access:
    """``has_access`` iff the primary subscription is trialing, active or in grace and has no
    open dispute; entitlements are its plan's (keyed by Stripe price id)."""
    first = primary(views)
    tag = label(views)
    if first is None:
        return Access(
            False,
            State.NONE,
            NOTHING,
            "no_subscription",
            describe(None, now, grace),
            STUDENT_REFUSAL,
            tag,
        )
    state = first.current(now, grace)
    words = describe(first, now, grace)
    if not sub_has_access(state, first.facts):
        reason = "dispute_open" if first.facts.dispute_open and state in ACCESS else state.value
        return Access(False, state, NOTHING, reason, words, STUDENT_REFUSAL, tag)
    plan = _plan_for(first.snapshot.plan, plans)
    entitlements = plan.entitlements if plan else _fallback(plans)
    banner: str | None = None
    if state is State.GRACE or (
        state is State.TRIALING
        and first.snapshot.trial_end is not None
        and first.snapshot.trial_end - now <= 3 * DAY
    ):
        banner = words
    return Access(True, state, entitlements, state.value, banner, None, tag)


def _plan_for(price: str | None, plans: Mapping[str, Plan]) -> Plan | None:
    for plan in plans.values():
        if price is not None and price in (plan.stripe_price, plan.key):
            return plan
    return None


def _fallback(plans: Mapping[str, Plan]) -> Entitlements:
    """A subscription on a price we don't list gets the smallest plan's entitlements."""
    if not plans:
        return Entitlements(students_per_classroom=1, video=False)
    smallest = min(plans.values(), key=lambda p: (p.students_per_classroom, p.key))
    return smallest.entitlements
