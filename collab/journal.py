"""Persistence of updates: per-room buffers (:class:`Journal`) written by one node-wide
:class:`Saver` in group commits.

One transaction per save for the whole node, rather than one per room: with 30 busy rooms
the per-room debounce meant ~120 small transactions a second, each a thread hand-off and
a commit (bench/RESULTS.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

from . import metrics
from .limits import Limits
from .ports import DocumentName, Store, StoredUpdate

log = logging.getLogger("inkroom.collab.journal")


class Journal:
    """A room's updates not yet in the store, plus the size of the log since its snapshot.

    :attr:`idle` is false while anything waits or is being written: the registry never
    unloads a room whose journal is not idle.
    """

    def __init__(
        self,
        name: DocumentName,
        *,
        on_dirty: Callable[[Journal], None],
        tail_updates: int = 0,
        tail_bytes: int = 0,
        snapshot_bytes: int = 0,
    ) -> None:
        self.name = name
        self._on_dirty = on_dirty
        self._pending: list[StoredUpdate] = []
        # The bus sequence number each pending update was published with (0: none).
        self._seqs: list[int] = []
        self._in_flight = 0
        # Called after each write with the highest sequence number written and whether
        # nothing is left pending (the room tells the other nodes it is saved).
        self.on_written: Callable[[int, bool], None] | None = None
        self.tail_updates = tail_updates
        self.tail_bytes = tail_bytes
        # The snapshot's size as an update: compaction's cadence grows with it.
        self.snapshot_bytes = snapshot_bytes
        # Updates recorded and updates stored since the room loaded: an update recorded
        # as number n is durable once ``stored >= n`` (saved acknowledgements).
        self.recorded = 0
        self.stored = 0

    @property
    def idle(self) -> bool:
        return not self._pending

    @property
    def pending(self) -> int:
        return len(self._pending)

    def record(self, update: bytes, author: str | None, seq: int = 0) -> None:
        self._pending.append(StoredUpdate(update, author, datetime.now(UTC)))
        self._seqs.append(seq)
        self.recorded += 1
        self._on_dirty(self)

    def take(self) -> list[StoredUpdate]:
        """What a save should write now; stays pending until :meth:`written`."""
        self._in_flight = len(self._pending)
        return self._pending[: self._in_flight]

    def written(self) -> None:
        batch, self._pending = self._pending[: self._in_flight], self._pending[self._in_flight :]
        seqs, self._seqs = self._seqs[: self._in_flight], self._seqs[self._in_flight :]
        self._in_flight = 0
        self.stored += len(batch)
        self.tail_updates += len(batch)
        self.tail_bytes += sum(len(u.data) for u in batch)
        if self.on_written is not None:
            self.on_written(max(seqs, default=0), not self._pending)

    def needs_compaction(self, limits: Limits) -> bool:
        """Whether the tail is long enough to fold (see :class:`Limits`): geometric in the
        snapshot's size, so snapshots written sum to a fraction of the log."""
        if not self.tail_updates:
            return False
        return self.tail_updates >= limits.compact_after_updates or self.tail_bytes >= max(
            limits.compact_after_bytes, limits.compact_growth * self.snapshot_bytes
        )

    def compacted(self, snapshot_bytes: int) -> None:
        self.snapshot_bytes = snapshot_bytes
        self.tail_updates = 0
        self.tail_bytes = 0


class Saver:
    """Writes every dirty journal of a node in one store call.

    A save happens after ``save_debounce`` seconds without new changes, and at the latest
    ``save_max_delay`` seconds after the first unsaved change. A failed save keeps
    everything pending and retries with backoff; :meth:`flush` writes at once.
    """

    def __init__(self, store: Store, limits: Limits) -> None:
        self._store = store
        self._limits = limits
        self._dirty: set[Journal] = set()
        self._wake = asyncio.Event()
        self._first_change = 0.0
        self._last_change = 0.0
        self._lock = asyncio.Lock()
        # Documents whose own save failed: consecutive failures, and when to try again.
        # One document's failure never holds back another's (a batch that fails is
        # retried document by document).
        self.failing: dict[DocumentName, int] = {}
        self._retry_at: dict[DocumentName, float] = {}

    def mark_dirty(self, journal: Journal) -> None:
        """Called for every recorded update: cheap, and wakes the saver only when it
        goes from nothing to save to something."""
        now = time.monotonic()
        self._last_change = now
        if not self._dirty:
            self._first_change = now
            self._wake.set()
        self._dirty.add(journal)

    async def run(self) -> None:
        """Saves for as long as the node runs. Cancel to stop; :meth:`flush` first."""
        limits = self._limits
        while True:
            retry = min(self._retry_at.values(), default=None)
            if retry is None:
                await self._wake.wait()
            else:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(max(0.0, retry - time.monotonic())):
                        await self._wake.wait()
            self._wake.clear()
            # Records move _last_change without waking this task: a timer re-checked on
            # each expiry, not a poll for something that has an event.
            while (  # noqa: ASYNC110
                remaining := min(
                    self._last_change + limits.save_debounce,
                    self._first_change + limits.save_max_delay,
                )
                - time.monotonic()
            ) > 0 and self._due_without_retry():
                await asyncio.sleep(remaining)
            await self.flush(retry=True, drain=False)

    def _due_without_retry(self) -> bool:
        return any(j.name not in self._retry_at for j in self._dirty)

    async def flush(self, *, retry: bool, drain: bool = True) -> None:
        """Writes what is pending, one store call (one transaction) per batch.

        With ``drain``, keeps writing until nothing is pending (shutdown), waiting out
        failing documents' backoff; without it, writes one batch and leaves what arrived
        meanwhile to the next debounce, so a steady stream of edits gives one save per
        debounce, not back-to-back saves. A failed batch is retried document by document:
        the healthy ones are written, the failing ones wait for their own backoff.

        Raises:
            Exception: the store's error, when ``retry`` is false.
        """
        async with self._lock:
            while self._dirty:
                now = time.monotonic()
                journals = [
                    j for j in self._dirty if j.pending and self._retry_at.get(j.name, 0) <= now
                ]
                if not journals:
                    if not drain:
                        return
                    await asyncio.sleep(max(0.01, min(self._retry_at.values()) - now))
                    continue
                batches = {j.name: j.take() for j in journals}
                started = time.perf_counter()
                try:
                    await self._store.append(batches)
                    saved, error = journals, None
                except Exception as exc:
                    metrics.SAVE_FAILURES.inc()
                    log.warning(
                        "batch save failed; saving document by document",
                        extra={"documents": len(batches), "error": type(exc).__name__},
                    )
                    saved, error = await self._isolate(journals, batches)
                metrics.SAVE_LATENCY.observe(time.perf_counter() - started)
                for journal in saved:
                    journal.written()
                    self._retry_at.pop(journal.name, None)
                    self.failing.pop(journal.name, None)
                metrics.FAILING_DOCUMENTS.set(len(self.failing))
                # Updates recorded while the save was in flight keep their journal dirty.
                self._dirty = {j for j in self._dirty if j.pending}
                if self._dirty:
                    self._first_change = time.monotonic()
                    self._wake.set()
                await self._compact([j for j in saved if j.needs_compaction(self._limits)])
                if error is not None and not retry:
                    raise error
                if not drain:
                    return

    async def _isolate(
        self,
        journals: list[Journal],
        batches: dict[DocumentName, list[StoredUpdate]],
    ) -> tuple[list[Journal], Exception | None]:
        saved: list[Journal] = []
        error: Exception | None = None
        for journal in journals:
            try:
                await self._store.append({journal.name: batches[journal.name]})
            except Exception as exc:
                error = exc
                failures = self.failing.get(journal.name, 0) + 1
                self.failing[journal.name] = failures
                delay = min(
                    self._limits.save_retry_initial * 2 ** (failures - 1),
                    self._limits.save_retry_max,
                )
                self._retry_at[journal.name] = time.monotonic() + delay
                metrics.DOCUMENT_SAVE_FAILURES.inc()
                log.error(  # noqa: TRY400 - the traceback is in the exception field
                    "document save failed; keeping its updates in memory",
                    extra={
                        "document": journal.name,
                        "updates": len(batches[journal.name]),
                        "failures": failures,
                        "retry_in": delay,
                        "error": f"{type(exc).__name__}: {exc}"[:300],
                    },
                )
            else:
                saved.append(journal)
        return saved, error

    async def _compact(self, journals: list[Journal]) -> None:
        for journal in journals:
            await self.compact(journal)

    async def compact(self, journal: Journal) -> bool:
        """Folds ``journal``'s document's tail into its snapshot; whether that worked. A
        failure is logged: the log is intact, compaction only speeds up the next load."""
        # Called with the saver's lock held (no write of this journal meanwhile), or for
        # a room already unloaded (its journal takes no more updates).
        try:
            snapshot_bytes = await self._store.compact(journal.name)
        except Exception:
            log.exception("compaction failed", extra={"document": journal.name})
            return False
        metrics.COMPACTIONS.inc()
        journal.compacted(snapshot_bytes)
        return True
