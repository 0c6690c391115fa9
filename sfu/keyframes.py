"""Keyframe requests toward a publisher: throttled and coalesced, never dropped (pure)."""

from __future__ import annotations


class KeyframeThrottle:
    """Decides when a keyframe request (PLI) goes to the publisher.

    At most one request per ``interval`` seconds leaves; a request inside the window is not
    dropped but deferred to the window's end, and every request made while one is deferred
    joins it. So twenty subscribers joining at once cost the publisher one keyframe, and a
    late joiner is never left waiting for a keyframe nobody asked for (dropping throttled
    requests instead starved late joiners in the prototype).
    """

    __slots__ = ("_last_sent", "_pending", "interval")

    def __init__(self, interval: float) -> None:
        if interval < 0:
            raise ValueError("interval must not be negative")
        self.interval = interval
        self._last_sent: float | None = None
        self._pending = False

    @property
    def pending(self) -> bool:
        return self._pending

    def request(self, now: float) -> float | None:
        """Registers a request made at ``now``.

        Returns ``0.0``: send it now (already counted as sent); a positive delay: call
        :meth:`fire` after that many seconds; ``None``: a deferred request already covers it.
        """
        if self._pending:
            return None
        delay = 0.0 if self._last_sent is None else self._last_sent + self.interval - now
        if delay <= 0.0:  # compared once: a delay rounding to 0.0 must not leave one pending
            self._last_sent = now
            return 0.0
        self._pending = True
        return delay

    def fire(self, now: float) -> None:
        """The deferred request is being sent at ``now``."""
        self._pending = False
        self._last_sent = now
