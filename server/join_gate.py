"""Whether a new connection is refused before it is served (its classroom archived, its
document deleted), read once per document for a short while instead of once per join.

Every join asked the database: a thread hand-off and two queries, a sixth of a join's
CPU in the accept benchmark (bench/RESULTS.md). The start of the hour is hundreds of joins
to a few dozen documents, so "nothing refuses this document" is kept for ``ttl`` seconds,
and joins that arrive while it is being read wait for that one read. Refusals are never
kept: they are rare, and lifting one (an undelete, a restore) must count at once.

How stale a kept answer can be is bounded: the node that archives a classroom or deletes a
document forgets at once; other nodes forget when they are asked to end the document's
connections (a deletion asks every node), and in any case after ``ttl``. A join that read
the database just before the deletion committed had the same window before this cache.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from prometheus_client import Counter

from .connections import classroom_of
from .errors import ServerError

TTL = 2.0  # seconds an open verdict is kept
MAX_KEPT = 10_000  # documents remembered; the least recently asked go first

READS = Counter(
    "inkroom_join_gate_reads_total",
    "Joins whose refusal check read the database (the rest used a verdict kept for a while)",
)

Read = Callable[[str], Awaitable[ServerError | None]]


class _Retry:
    """What waiters are told when the read they waited on did not finish (its caller was
    cancelled or it failed): read again themselves."""


_RETRY = _Retry()


class JoinGate:
    __slots__ = ("_clock", "_generation", "_max", "_open", "_read", "_reading", "_ttl")

    def __init__(
        self,
        read: Read,
        *,
        ttl: float = TTL,
        max_kept: int = MAX_KEPT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._read = read
        self._ttl = ttl
        self._max = max_kept
        self._clock = clock
        self._open: OrderedDict[str, float] = OrderedDict()  # document -> kept until
        self._reading: dict[str, asyncio.Future[ServerError | _Retry | None]] = {}
        # Bumped by every forget: a read that started before one is answered, not kept.
        self._generation = 0

    async def refusal(self, document: str) -> ServerError | None:
        """Why a join to ``document`` is refused, or ``None``."""
        while True:
            until = self._open.get(document)
            if until is not None:
                if until > self._clock():
                    self._open.move_to_end(document)
                    return None
                del self._open[document]
            waiting = self._reading.get(document)
            if waiting is None:
                return await self._read_once(document)
            # Shielded: a waiter that is cancelled must not cancel everyone's read.
            verdict = await asyncio.shield(waiting)
            if not isinstance(verdict, _Retry):
                return verdict

    async def _read_once(self, document: str) -> ServerError | None:
        shared: asyncio.Future[ServerError | _Retry | None] = (
            asyncio.get_running_loop().create_future()
        )
        self._reading[document] = shared
        generation = self._generation
        READS.inc()
        try:
            verdict = await self._read(document)
        except BaseException:
            shared.set_result(_RETRY)
            raise
        finally:
            del self._reading[document]
        if not shared.done():
            shared.set_result(verdict)
        if verdict is None and generation == self._generation:
            self._open[document] = self._clock() + self._ttl
            while len(self._open) > self._max:
                self._open.popitem(last=False)
        return verdict

    def forget(self, *, document: str | None = None, classroom: str | None = None) -> None:
        """Drops the kept verdicts for ``document``, or for every document of
        ``classroom``; with neither, all of them."""
        self._generation += 1
        if document is None and classroom is None:
            self._open.clear()
            return
        for name in [
            d
            for d in self._open
            if d == document or (classroom is not None and classroom_of(d) == classroom)
        ]:
            del self._open[name]


__all__ = ["JoinGate"]
