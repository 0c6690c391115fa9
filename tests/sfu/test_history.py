from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sfu.history import PacketHistory


def test_finds_recent_packets_and_forgets_overwritten_ones() -> None:
    h: PacketHistory[str] = PacketHistory(4)
    for seq in range(65534, 65534 + 6):
        h.put(seq % 65536, f"p{seq % 65536}")
    assert h.get(65534) is None  # overwritten by seq 2
    assert h.get(65535) is None
    assert [h.get(s) for s in (0, 1, 2, 3)] == ["p0", "p1", "p2", "p3"]
    assert h.get(7) is None


def test_rejects_bad_sizes() -> None:
    with pytest.raises(ValueError, match=r"history size must be in 1\.\.32768"):
        PacketHistory(0)


@given(st.integers(1, 64), st.lists(st.integers(0, 65535), max_size=200))
def test_never_returns_another_packet(size: int, seqs: list[int]) -> None:
    h: PacketHistory[int] = PacketHistory(size)
    for seq in seqs:
        h.put(seq, seq)
    for probe in range(0, 65536, 997):
        assert h.get(probe) in (None, probe)
    for seq in seqs[-1:]:
        assert h.get(seq) == seq
