"""Per-subscriber rewriting of a forwarded stream's sequence numbers and timestamps (pure).

A subscriber sees one continuous RTP stream per slot whatever happens upstream: the
forwarder pauses it (policy, nobody speaking), resumes it later, or switches the slot to
another publisher. Each run of forwarded packets gets offsets chosen so that its first
packet follows the last one sent (sequence number + 1, timestamp + the elapsed time), so
the subscriber's jitter buffer sees neither a gap to NACK nor a jump to resync on. Within
a run the mapping is a fixed offset, so a retransmission (RTX) of a packet maps to the
sequence number the subscriber is missing.
"""

from __future__ import annotations

SEQ_MOD = 1 << 16
TS_MOD = 1 << 32
_HALF_SEQ = 1 << 15
# Packets further behind the newest than this are too old to forward in any case; the
# run's start is dragged along so the "before the run" test survives a 16-bit wrap.
_WINDOW = 1 << 14


def seq_newer(a: int, b: int) -> bool:
    """Whether 16-bit sequence number ``a`` comes after ``b`` (RFC 3550 serial arithmetic)."""
    return a != b and (a - b) % SEQ_MOD < _HALF_SEQ


class Rewriter:
    """Maps (seq, ts) of one publisher stream to those of one subscriber's stream.

    ``first_seq``/``first_ts`` are where the subscriber's stream starts (random per
    subscriber, like any RTP sender's origin).
    """

    __slots__ = (
        "_active",
        "_highest",
        "_last_ts",
        "_next_seq",
        "_seq_offset",
        "_start",
        "_ts_offset",
        "started",
    )

    def __init__(self, first_seq: int, first_ts: int) -> None:
        self._next_seq = first_seq % SEQ_MOD
        self._last_ts = first_ts % TS_MOD
        self._seq_offset = 0
        self._ts_offset = 0
        self._start = 0
        self._highest = 0
        self._active = False
        self.started = False  # whether any packet was ever forwarded

    @property
    def active(self) -> bool:
        return self._active

    def resume(self, seq: int, ts: int, ts_gap: int) -> None:
        """Starts a run at the publisher packet (``seq``, ``ts``).

        Its output is the packet after the last one sent, ``ts_gap`` (>= 1, in clock
        units: the time since the last packet) later. The first run starts at the origin.
        """
        out_ts = (self._last_ts + max(1, ts_gap)) % TS_MOD if self.started else self._last_ts
        self._seq_offset = (self._next_seq - seq) % SEQ_MOD
        self._ts_offset = (out_ts - ts) % TS_MOD
        self._start = self._highest = seq % SEQ_MOD
        self._active = True
        self.started = True

    def pause(self) -> None:
        """Ends the run: nothing maps until the next :meth:`resume`."""
        self._active = False

    def map(self, seq: int, ts: int) -> tuple[int, int] | None:
        """The subscriber's (seq, ts) for a publisher packet; ``None`` when it must not be
        forwarded (paused, or older than the current run's first packet)."""
        if not self._active:
            return None
        if seq != self._start and not seq_newer(seq, self._start):
            return None
        out_seq = (seq + self._seq_offset) % SEQ_MOD
        out_ts = (ts + self._ts_offset) % TS_MOD
        if seq == self._highest or seq_newer(seq, self._highest):
            self._highest = seq
            self._next_seq = (out_seq + 1) % SEQ_MOD
            self._last_ts = out_ts
            if (seq - self._start) % SEQ_MOD > _WINDOW:
                self._start = (seq - _WINDOW) % SEQ_MOD
        return out_seq, out_ts
