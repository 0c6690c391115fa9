"""The per-subscriber link estimate: loss and round trip pick the layer, with hysteresis."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from sfu.quality import Layer, LinkEstimate, Thresholds


def feed(est: LinkEstimate, loss: float, seconds: float, start: float, rtt: float = 0.05) -> float:
    """One report per second for ``seconds``; returns the time after the last one."""
    t = start
    while t < start + seconds:
        est.add_report(loss, rtt, t)
        t += 1.0
    return t


def test_a_clean_link_stays_full() -> None:
    est = LinkEstimate(0.0)
    feed(est, 0.0, 30, 0.0)
    assert est.layer is Layer.FULL


def test_one_lossy_report_is_not_a_weak_link() -> None:
    est = LinkEstimate(0.0)
    assert est.add_report(0.3, 0.05, 1.0) is None
    est.add_report(0.0, 0.05, 2.0)
    est.add_report(0.0, 0.05, 3.0)
    est.add_report(0.0, 0.05, 4.0)
    assert est.layer is Layer.FULL


def test_moderate_loss_gives_low_video_and_heavy_loss_audio_only() -> None:
    est = LinkEstimate(0.0)
    feed(est, 0.08, 4, 0.0)
    low = est.layer
    feed(est, 0.4, 4, 10.0)
    assert (low, est.layer) == (Layer.LOW, Layer.AUDIO)


def test_a_long_round_trip_degrades_too() -> None:
    est = LinkEstimate(0.0)
    feed(est, 0.0, 4, 0.0, rtt=1.5)
    assert est.layer is Layer.AUDIO


def test_recovery_is_one_step_at_a_time_after_a_good_spell() -> None:
    est = LinkEstimate(0.0)
    t = feed(est, 0.5, 4, 0.0)
    assert est.layer is Layer.AUDIO
    changes = []
    while t < 40:
        change = est.add_report(0.0, 0.05, t)
        if change is not None:
            changes.append((t, change))
        t += 1.0
    assert [c for _, c in changes] == [Layer.LOW, Layer.FULL]
    assert changes[1][0] - changes[0][0] >= Thresholds().up_after


def test_remb_is_kept_but_decides_nothing() -> None:
    est = LinkEstimate(0.0)
    est.add_remb(50_000)
    feed(est, 0.0, 10, 1.0)
    assert (est.remb, est.layer) == (50_000, Layer.FULL)


def test_silence_steps_up_after_the_probe_delay() -> None:
    est = LinkEstimate(0.0)
    t = feed(est, 0.5, 4, 0.0)
    assert est.tick(t + 1) is None
    assert est.tick(t + Thresholds().probe_after + 1) is Layer.LOW


@given(st.lists(st.tuples(st.floats(0, 1), st.floats(0, 3)), max_size=200))
def test_layers_only_ever_move_one_step_up(reports: list[tuple[float, float]]) -> None:
    est = LinkEstimate(0.0)
    order = [Layer.FULL, Layer.LOW, Layer.AUDIO]
    for i, (loss, rtt) in enumerate(reports):
        before = est.layer
        after = est.add_report(loss, rtt, float(i))
        if after is not None:
            assert order.index(after) >= order.index(before) - 1
