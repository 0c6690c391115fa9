from __future__ import annotations

import itertools

from hypothesis import example, given
from hypothesis import strategies as st

from sfu.keyframes import KeyframeThrottle


def test_first_request_goes_at_once_then_the_window_coalesces() -> None:
    t = KeyframeThrottle(0.3)
    assert t.request(10.0) == 0.0
    delay = t.request(10.1)
    assert delay is not None
    assert abs(delay - 0.2) < 1e-9
    assert t.request(10.15) is None  # joins the deferred one
    assert t.request(10.2) is None
    t.fire(10.3)
    assert not t.pending
    assert t.request(10.7) == 0.0


@given(st.lists(st.floats(0, 0.5), min_size=1, max_size=60))
# A delay that rounds to exactly 0.0 once returned "send now" while leaving a request
# pending forever, so every later request was coalesced into nothing.
@example([0.022830438238340748, 0.34096577433598013, 0.25, 0.5])
def test_no_two_sends_closer_than_the_interval_and_none_dropped(gaps: list[float]) -> None:
    """Simulates requests at increasing times; deferred sends fire when due."""
    interval = 0.25
    t = KeyframeThrottle(interval)
    sends: list[float] = []
    due: float | None = None
    now = 0.0
    for gap in gaps:
        now += gap
        if due is not None and due <= now:
            t.fire(due)
            sends.append(due)
            due = None
        decision = t.request(now)
        if decision == 0.0:
            sends.append(now)
        elif decision is not None:
            due = now + decision
        # Every request is covered by a send at or after it, within the interval.
        covered = [s for s in sends if s >= now] or ([due] if due is not None else [])
        assert covered
        assert covered[0] - now <= interval + 1e-9
    for a, b in itertools.pairwise(sends):
        assert b - a >= interval - 1e-9
