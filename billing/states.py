"""The subscription states, the table of allowed transitions, and its check.

A state is what *we* make of a Stripe subscription (the entitlement view); Stripe's own
status string (the billing view) is only one of the inputs of :func:`billing.derive.derive`.
"""

from __future__ import annotations

import logging
from enum import StrEnum

from .metrics import FORBIDDEN, TRANSITIONS

log = logging.getLogger("inkroom.billing")


class State(StrEnum):
    NONE = "none"
    PENDING_PAYMENT = "pending_payment"
    TRIALING = "trialing"
    ACTIVE = "active"
    GRACE = "grace"
    LAPSED = "lapsed"
    CANCELED = "canceled"
    EXPIRED = "expired"
    REFUNDED = "refunded"
    REVOKED = "revoked"


LIVE = frozenset({State.PENDING_PAYMENT, State.TRIALING, State.ACTIVE, State.GRACE, State.LAPSED})
TERMINAL = frozenset({State.CANCELED, State.EXPIRED, State.REFUNDED, State.REVOKED})
# States in which the owner's classrooms are open (an open dispute still closes them).
ACCESS = frozenset({State.TRIALING, State.ACTIVE, State.GRACE})

# One step of the app's graph, following Stripe's status graph:
# incomplete -> active | incomplete_expired | canceled; trialing -> active | past_due | paused |
# canceled; active -> past_due | canceled; past_due -> active | unpaid | canceled;
# unpaid -> active | canceled; paused -> active | canceled. A refund that ends the subscription
# or a lost dispute can land on any subscription that was ever charged. Terminal states only
# refine upward: canceled -> refunded -> revoked.
_ENDED_BY_FACTS = frozenset({State.REFUNDED, State.REVOKED})
STEPS: dict[State, frozenset[State]] = {
    State.NONE: frozenset(State) - {State.NONE},
    State.PENDING_PAYMENT: frozenset({State.ACTIVE, State.EXPIRED, State.CANCELED})
    | _ENDED_BY_FACTS,
    State.TRIALING: frozenset({State.ACTIVE, State.GRACE, State.LAPSED, State.CANCELED})
    | _ENDED_BY_FACTS,
    State.ACTIVE: frozenset({State.GRACE, State.CANCELED}) | _ENDED_BY_FACTS,
    State.GRACE: frozenset({State.ACTIVE, State.LAPSED, State.CANCELED}) | _ENDED_BY_FACTS,
    State.LAPSED: frozenset({State.ACTIVE, State.CANCELED}) | _ENDED_BY_FACTS,
    State.CANCELED: _ENDED_BY_FACTS,
    State.REFUNDED: frozenset({State.REVOKED}),
    State.REVOKED: frozenset(),
    State.EXPIRED: frozenset(),
}


def _closure(steps: dict[State, frozenset[State]]) -> frozenset[tuple[State, State]]:
    """Reachability, not adjacency: a missed or superseded event may skip steps."""
    pairs: set[tuple[State, State]] = set()
    for start in steps:
        seen: set[State] = set()
        frontier = list(steps[start])
        while frontier:
            state = frontier.pop()
            if state in seen:
                continue
            seen.add(state)
            frontier.extend(steps[state])
        pairs.update((start, to) for to in seen if to != start)
    return frozenset(pairs)


ALLOWED: frozenset[tuple[State, State]] = _closure(STEPS)
# Stripe lets the API move a paying subscription back into a trial (a future ``trial_end``):
# allowed only when the change was caused by one of our own intents (an admin extension).
OWN_INTENT_ONLY = frozenset(
    {(s, State.TRIALING) for s in (State.ACTIVE, State.GRACE, State.LAPSED)}
)


def is_allowed(before: State, after: State, *, own_intent: bool = False) -> bool:
    if before == after:
        return True
    if (before, after) in ALLOWED:
        return True
    return own_intent and (before, after) in OWN_INTENT_ONLY


def advance(
    before: State, derived: State, *, own_intent: bool = False, subject: str = ""
) -> tuple[State, bool]:
    """The state to keep, and whether the derived change was refused.

    A forbidden change is kept out of the state, logged and counted; the caller records it.
    """
    if before == derived:
        return before, False
    if is_allowed(before, derived, own_intent=own_intent):
        TRANSITIONS.labels(before.value, derived.value).inc()
        return derived, False
    FORBIDDEN.labels(before.value, derived.value).inc()
    log.warning(
        "billing forbidden transition refused",
        extra={"subscription": subject, "from": before.value, "to": derived.value},
    )
    return before, True
