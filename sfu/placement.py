"""Where a classroom's call lives when several nodes serve the same classrooms.

A call's packets must all meet in one process, so each call lives on one node. The node
that opens a call records itself with a lease (:class:`Leases`: in Redis across nodes,
in process alone); a join that reaches another node is answered with the holder
(:class:`CallElsewhere`, which ``server`` turns into a ``redirect`` message naming the
node's URL). The holder renews its leases while its calls are open and releases each
when the call closes; a node that dies leaves leases that expire after ``ttl`` seconds.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

from .errors import ErrorCode, SfuError

LEASE_TTL = 15.0  # seconds; renewed every third of it


@dataclass(frozen=True, slots=True)
class Host:
    """A node that hosts calls: its id, and the base URL clients reach it at
    (``https://node2.class.example.org``)."""

    node: str
    url: str


class CallElsewhere(SfuError):
    """The call is open on another node: join there."""

    code = ErrorCode.ELSEWHERE

    def __init__(self, host: Host) -> None:
        super().__init__(f"the call is on node {host.node}")
        self.host = host


class Leases(Protocol):
    """Who hosts each call. Implementations bound nothing themselves: calls are bounded by
    the nodes' own limits, and every lease expires."""

    async def acquire(self, call: str, me: Host, ttl: float) -> Host:
        """Takes the lease if it is free (or already ``me``'s); returns its holder.

        Raises:
            ConnectionError: the lease store cannot be reached (the node then hosts the
                call itself, as a single node would).
        """

    async def renew(self, call: str, me: Host, ttl: float) -> bool:
        """Extends ``me``'s lease; ``False`` when it is no longer ``me``'s."""

    async def release(self, call: str, me: Host) -> None:
        """Drops the lease if it is still ``me``'s."""


class LocalLeases:
    """One node alone: every call is this node's (kept only to answer ``acquire``)."""

    def __init__(self) -> None:
        self._held: dict[str, tuple[Host, float]] = {}

    async def acquire(self, call: str, me: Host, ttl: float) -> Host:
        now = time.monotonic()
        held = self._held.get(call)
        if held is not None and held[1] > now and held[0].node != me.node:
            return held[0]
        self._held[call] = (me, now + ttl)
        return me

    async def renew(self, call: str, me: Host, ttl: float) -> bool:
        held = self._held.get(call)
        if held is None or held[0].node != me.node:
            return False
        self._held[call] = (me, time.monotonic() + ttl)
        return True

    async def release(self, call: str, me: Host) -> None:
        held = self._held.get(call)
        if held is not None and held[0].node == me.node:
            del self._held[call]
