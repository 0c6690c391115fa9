"""A bounded retransmission history keyed by 16-bit RTP sequence number (pure)."""

from __future__ import annotations

from typing import Generic, TypeVar

T = TypeVar("T")


class PacketHistory(Generic[T]):
    """The last ``size`` items put, found by sequence number.

    A ring indexed by ``seq % size`` that also stores the full sequence number, so a NACK
    for a packet already overwritten (older than ``size`` packets) gets ``None`` rather
    than a different packet. Memory is bounded by ``size`` whatever the peer asks.
    """

    __slots__ = ("_items", "_seqs", "size")

    def __init__(self, size: int) -> None:
        if size <= 0 or size > 1 << 15:
            raise ValueError("history size must be in 1..32768")
        self.size = size
        self._seqs: list[int] = [-1] * size
        self._items: list[T | None] = [None] * size

    def put(self, seq: int, item: T) -> None:
        slot = seq % self.size
        self._seqs[slot] = seq
        self._items[slot] = item

    def get(self, seq: int) -> T | None:
        slot = seq % self.size
        if self._seqs[slot] != seq:
            return None
        return self._items[slot]
