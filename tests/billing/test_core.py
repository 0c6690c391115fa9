"""The pure core: the transition table, derivation, the access decision and its words."""

from __future__ import annotations

import itertools

import pytest
from prometheus_client import REGISTRY

from billing.derive import DAY, SubView, decide_access, derive, describe, primary, trial_eligible
from billing.model import DisputeFact, Plan, RefundFact, Snapshot, SubFacts
from billing.states import ACCESS, ALLOWED, LIVE, TERMINAL, State, advance, is_allowed

PLANS = {
    "solo": Plan("solo", "price_solo", "Solo", students_per_classroom=1, video=False),
    "group": Plan("group", "price_group", "Group", students_per_classroom=30, video=True),
}
NOW = 1_800_000_000


def snap(status: str, **kw: object) -> Snapshot:
    base: dict[str, object] = {"id": "sub_1", "customer": "cus_1", "status": status, "created": 1}
    base.update(kw)
    return Snapshot(**base)  # type: ignore[arg-type]


def test_terminal_states_never_return_to_live() -> None:
    for before, after in itertools.product(TERMINAL, LIVE | {State.NONE}):
        assert not is_allowed(before, after)
    assert is_allowed(State.CANCELED, State.REFUNDED)
    assert is_allowed(State.REFUNDED, State.REVOKED)
    assert is_allowed(State.CANCELED, State.REVOKED)
    assert not is_allowed(State.REFUNDED, State.CANCELED)
    assert not any(before is State.REVOKED for before, _ in ALLOWED)
    assert not any(before is State.EXPIRED for before, _ in ALLOWED)


def test_nothing_goes_back_to_pending_or_trial() -> None:
    for before in LIVE - {State.PENDING_PAYMENT}:
        assert not is_allowed(before, State.PENDING_PAYMENT)
    for before in State:
        if before is not State.NONE and before is not State.TRIALING:
            assert not is_allowed(before, State.TRIALING)
    assert is_allowed(State.ACTIVE, State.TRIALING, own_intent=True)
    assert not is_allowed(State.CANCELED, State.TRIALING, own_intent=True)


def test_reachability_lets_skipped_steps_through() -> None:
    assert is_allowed(State.LAPSED, State.GRACE)  # unpaid -> active -> past_due, middle missed
    assert is_allowed(State.PENDING_PAYMENT, State.LAPSED)
    assert is_allowed(State.NONE, State.REVOKED)


def _sample(name: str, labels: dict[str, str]) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_forbidden_change_is_refused_and_counted() -> None:
    labels = {"from_state": "canceled", "to_state": "active"}
    before = _sample("inkroom_billing_forbidden_transitions_total", labels)
    kept, refused = advance(State.CANCELED, State.ACTIVE, subject="sub_x")
    assert (kept, refused) == (State.CANCELED, True)
    assert _sample("inkroom_billing_forbidden_transitions_total", labels) == before + 1
    assert advance(State.TRIALING, State.ACTIVE) == (State.ACTIVE, False)


@pytest.mark.parametrize(
    ("status", "state"),
    [
        ("incomplete", State.PENDING_PAYMENT),
        ("incomplete_expired", State.EXPIRED),
        ("trialing", State.TRIALING),
        ("active", State.ACTIVE),
        ("unpaid", State.LAPSED),
        ("paused", State.LAPSED),
        ("canceled", State.CANCELED),
        ("something_new", State.LAPSED),
    ],
)
def test_derive_from_status(status: str, state: State) -> None:
    assert derive(snap(status), SubFacts(), NOW) is state


def test_grace_window_from_stripe_time_not_ours() -> None:
    s = snap("past_due", past_due_since=NOW - 6 * DAY)
    assert derive(s, SubFacts(), NOW) is State.GRACE
    assert derive(s, SubFacts(), NOW + DAY) is State.LAPSED
    assert derive(s, SubFacts(), NOW, grace=3 * DAY) is State.LAPSED


def test_facts_outrank_status_and_join_in_any_order() -> None:
    refund = RefundFact("re_1", "sub_1", "cus_1", ends_subscription=True)
    lost = DisputeFact("dp_1", "sub_1", "cus_1", "lost")
    opened = DisputeFact("dp_1", "sub_1", "cus_1", "needs_response")
    untagged = RefundFact("re_2", "sub_1", "cus_1", ends_subscription=False)
    a = SubFacts().with_refund(refund).with_dispute(lost).with_dispute(opened)
    b = SubFacts().with_dispute(opened).with_dispute(lost).with_refund(refund).with_refund(refund)
    assert a == b
    assert derive(snap("active"), a, NOW) is State.REVOKED
    assert derive(snap("active"), SubFacts().with_refund(refund), NOW) is State.REFUNDED
    assert derive(snap("active"), SubFacts().with_refund(untagged), NOW) is State.ACTIVE
    assert SubFacts().with_dispute(opened).join(SubFacts().with_dispute(lost)).dispute_lost


def view(status: str, state: State, facts: SubFacts | None = None, **kw: object) -> SubView:
    return SubView(snap(status, **kw), facts or SubFacts(), state)


def test_access_iff_allowed_state_and_no_open_dispute() -> None:
    for state in State:
        access = decide_access([view("active", state)], PLANS, NOW)
        assert access.has_access == (state in ACCESS)
    disputed = SubFacts().with_dispute(DisputeFact("dp", "sub_1", "cus_1", "under_review"))
    access = decide_access([view("active", State.ACTIVE, disputed)], PLANS, NOW)
    assert not access.has_access
    assert access.reason == "dispute_open"
    won = disputed.with_dispute(DisputeFact("dp", "sub_1", "cus_1", "won"))
    assert decide_access([view("active", State.ACTIVE, won)], PLANS, NOW).has_access


def test_entitlements_from_the_plan() -> None:
    access = decide_access([view("active", State.ACTIVE, plan="price_group")], PLANS, NOW)
    assert access.entitlements.students_per_classroom == 30
    assert access.entitlements.video
    unknown = decide_access([view("active", State.ACTIVE, plan="price_x")], PLANS, NOW)
    assert unknown.entitlements.students_per_classroom == 1
    none = decide_access([], PLANS, NOW)
    assert not none.has_access
    assert none.reason == "no_subscription"
    assert none.student_message


def test_words_for_the_tutor() -> None:
    trial = view("trialing", State.TRIALING, trial_end=NOW + 9 * DAY)
    assert describe(trial, NOW) == "Trial, 9 days left"
    may = 1_778_544_000  # 12 May 2026 00:00 UTC
    grace = view("past_due", State.GRACE, past_due_since=may - 7 * DAY)
    assert describe(grace, may - DAY) == "Payment failed: update your card by 12 May 2026"
    access = decide_access([grace], PLANS, may - DAY)
    assert access.has_access
    assert access.banner == "Payment failed: update your card by 12 May 2026"
    lapsed = decide_access([grace], PLANS, may + 1)
    assert not lapsed.has_access
    assert lapsed.state is State.LAPSED


def test_returning_customer_gets_no_second_trial() -> None:
    assert trial_eligible([])
    old = SubView(snap("canceled", id="sub_0"), SubFacts(), State.CANCELED)
    assert not trial_eligible([old])
    new = SubView(snap("active", id="sub_2", created=5), SubFacts(), State.ACTIVE)
    access = decide_access([old, new], PLANS, NOW)
    assert access.label == "returning"
    assert access.has_access


def test_primary_prefers_access_then_oldest() -> None:
    a = SubView(snap("active", id="a", created=5), SubFacts(), State.ACTIVE)
    b = SubView(snap("active", id="b", created=3), SubFacts(), State.ACTIVE)
    c = SubView(snap("unpaid", id="c", created=1), SubFacts(), State.LAPSED)
    assert primary([a, b, c]) is b
    ended = SubView(snap("canceled", id="d", created=9), SubFacts(), State.CANCELED)
    assert primary([ended, c]) is c
    assert primary([ended]) is ended
