from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from sfu.rewriter import SEQ_MOD, TS_MOD, Rewriter, seq_newer


def test_first_run_starts_at_the_origin() -> None:
    r = Rewriter(1000, 5000)
    assert r.map(7, 70) is None  # nothing before the first resume
    r.resume(65535, 4_294_967_000, ts_gap=0)
    assert r.map(65535, 4_294_967_000) == (1000, 5000)
    assert r.map(0, 4_294_967_000 + 3000 - TS_MOD) == (1001, 8000)  # both wrap


def test_resume_continues_where_the_last_run_ended() -> None:
    r = Rewriter(10, 0)
    r.resume(500, 90_000, 0)
    assert r.map(500, 90_000) == (10, 0)
    assert r.map(501, 93_000) == (11, 3000)
    r.pause()
    assert r.map(502, 96_000) is None
    r.resume(40_000, 7, ts_gap=9000)  # another publisher, other origins
    assert r.map(40_000, 7) == (12, 12_000)
    assert r.map(40_001, 3007) == (13, 15_000)


def test_packets_older_than_the_run_are_not_forwarded_but_retransmissions_are() -> None:
    r = Rewriter(0, 0)
    r.resume(100, 0, 0)
    assert r.map(99, 0) is None
    assert r.map(100, 0) == (0, 0)
    assert r.map(102, 0) == (2, 0)
    assert r.map(101, 0) == (1, 0)  # late (RTX) packet gets the number the subscriber misses
    assert r.map(103, 0) == (3, 0)


def test_a_long_run_survives_sequence_wraps() -> None:
    r = Rewriter(0, 0)
    r.resume(0, 0, 0)
    for i in range(3 * SEQ_MOD):
        assert r.map(i % SEQ_MOD, 0) == (i % SEQ_MOD, 0)


def test_seq_newer() -> None:
    assert seq_newer(1, 0)
    assert seq_newer(0, 65535)
    assert not seq_newer(0, 1)
    assert not seq_newer(5, 5)


runs = st.lists(
    st.tuples(
        st.integers(0, SEQ_MOD - 1),  # publisher's first seq of the run
        st.integers(0, TS_MOD - 1),  # publisher's first ts
        st.integers(1, 300),  # packets in the run
        st.integers(0, 90_000),  # ts gap before it
    ),
    min_size=1,
    max_size=6,
)


@given(st.integers(0, SEQ_MOD - 1), st.integers(0, TS_MOD - 1), runs)
def test_output_is_one_continuous_stream_across_runs(
    first_seq: int, first_ts: int, spec: list[tuple[int, int, int, int]]
) -> None:
    r = Rewriter(first_seq, first_ts)
    out: list[tuple[int, int]] = []
    for seq0, ts0, count, gap in spec:
        r.resume(seq0, ts0, gap)
        for i in range(count):
            mapped = r.map((seq0 + i) % SEQ_MOD, (ts0 + 960 * i) % TS_MOD)
            assert mapped is not None
            out.append(mapped)
        r.pause()
    assert out[0] == (first_seq, first_ts)
    for (s1, t1), (s2, t2) in itertools.pairwise(out):
        assert s2 == (s1 + 1) % SEQ_MOD  # no gap for the subscriber to NACK, no repeat
        assert 0 < (t2 - t1) % TS_MOD <= 90_000  # forward only, by the frame or the gap
