"""Values of the billing core: what we know of Stripe's objects, facts, plans, access."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import NewType

from .states import State

AccountId = NewType("AccountId", str)
"""The owner of classrooms, opaque to billing (the accounts issue defines it)."""

# Stripe's subscription statuses.
STRIPE_LIVE = frozenset({"incomplete", "trialing", "active", "past_due", "unpaid", "paused"})
STRIPE_ENDED = frozenset({"canceled", "incomplete_expired"})


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A subscription as re-fetched from Stripe (never as carried by a webhook payload)."""

    id: str
    customer: str
    status: str
    created: int
    plan: str | None = None
    trial_start: int | None = None
    trial_end: int | None = None
    # When the invoice that made it past due was finalized (from Stripe, not from our clock),
    # so the grace window does not depend on when we happened to look.
    past_due_since: int | None = None
    current_period_end: int | None = None
    cancel_at_period_end: bool = False
    latest_charge: str | None = None

    @property
    def stripe_live(self) -> bool:
        return self.status in STRIPE_LIVE


# Dispute statuses by rank: a dispute only moves up, and ``lost`` wins a tie with ``won``.
DISPUTE_RANK: Mapping[str, int] = {
    "warning_needs_response": 0,
    "needs_response": 0,
    "warning_under_review": 1,
    "under_review": 1,
    "warning_closed": 2,
    "won": 2,
    "charge_refunded": 2,
    "prevented": 2,
    "lost": 3,
}
OPEN_DISPUTE = frozenset(
    {"warning_needs_response", "needs_response", "warning_under_review", "under_review"}
)


def dispute_rank(status: str) -> int:
    return DISPUTE_RANK.get(status, -1)


@dataclass(frozen=True, slots=True)
class RefundFact:
    """A refund of one of the subscription's charges; only ``ends_subscription`` ones count."""

    id: str
    subscription: str
    customer: str
    ends_subscription: bool
    created: int = 0


@dataclass(frozen=True, slots=True)
class DisputeFact:
    id: str
    subscription: str
    customer: str
    status: str
    created: int = 0


@dataclass(frozen=True, slots=True)
class SubFacts:
    """Grow-only facts about one subscription: a join-semilattice (order and repeats
    don't matter)."""

    ending_refunds: frozenset[str] = frozenset()
    disputes: Mapping[str, str] = field(default_factory=dict)

    def with_refund(self, fact: RefundFact) -> SubFacts:
        if not fact.ends_subscription or fact.id in self.ending_refunds:
            return self
        return replace(self, ending_refunds=self.ending_refunds | {fact.id})

    def with_dispute(self, fact: DisputeFact) -> SubFacts:
        current = self.disputes.get(fact.id)
        if current is not None and dispute_rank(current) >= dispute_rank(fact.status):
            return self
        return replace(self, disputes={**self.disputes, fact.id: fact.status})

    def join(self, other: SubFacts) -> SubFacts:
        result = replace(self, ending_refunds=self.ending_refunds | other.ending_refunds)
        for dispute_id, status in other.disputes.items():
            result = result.with_dispute(DisputeFact(dispute_id, "", "", status))
        return result

    @property
    def refunded(self) -> bool:
        return bool(self.ending_refunds)

    @property
    def dispute_lost(self) -> bool:
        return any(s == "lost" for s in self.disputes.values())

    @property
    def dispute_open(self) -> bool:
        return any(s in OPEN_DISPUTE for s in self.disputes.values())


@dataclass(frozen=True, slots=True)
class Entitlements:
    """What a plan allows; ``None`` students means no limit (billing off)."""

    students_per_classroom: int | None
    video: bool

    def to_json(self) -> dict[str, object]:
        return {"students_per_classroom": self.students_per_classroom, "video": self.video}


UNLIMITED = Entitlements(students_per_classroom=None, video=True)
NOTHING = Entitlements(students_per_classroom=0, video=False)


@dataclass(frozen=True, slots=True)
class Plan:
    """A plan offered at checkout: ``stripe_price`` is the Stripe price (or legacy plan) id."""

    key: str
    stripe_price: str
    name: str
    students_per_classroom: int
    video: bool
    trial_days: int = 14

    @property
    def entitlements(self) -> Entitlements:
        return Entitlements(self.students_per_classroom, self.video)


@dataclass(frozen=True, slots=True)
class Access:
    """The one access decision: whether the account's classrooms are open, and what to say."""

    has_access: bool
    state: State
    entitlements: Entitlements
    reason: str
    # For the tutor (home page, banner in a lesson); ``None`` when there is nothing to fix.
    banner: str | None = None
    # For a student refused at the door.
    student_message: str | None = None
    label: str = "prospect"

    def to_json(self) -> dict[str, object]:
        return {
            "has_access": self.has_access,
            "state": self.state.value,
            "entitlements": self.entitlements.to_json(),
            "reason": self.reason,
            "banner": self.banner,
            "student_message": self.student_message,
            "label": self.label,
        }
