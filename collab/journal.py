"""Debounced, retrying persistence of one room's updates to the append-only log."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime

from . import metrics
from .limits import Limits
from .ports import DocumentName, Store, StoredUpdate

log = logging.getLogger("inkroom.collab.journal")


class Journal:
    """Collects a room's updates and appends them to the store in batches.

    A batch is written after ``save_debounce`` seconds without changes, and at the latest
    ``save_max_delay`` seconds after its first change. A failed append keeps the batch and
    retries with backoff; the room stays loaded meanwhile (:attr:`idle` is false).
    """

    def __init__(
        self,
        name: DocumentName,
        store: Store,
        limits: Limits,
        *,
        tail_updates: int = 0,
        tail_bytes: int = 0,
    ) -> None:
        self._name = name
        self._store = store
        self._limits = limits
        self._pending: list[StoredUpdate] = []
        self._dirty = asyncio.Event()
        self._first_change = 0.0
        self._last_change = 0.0
        self._saving = False
        self._lock = asyncio.Lock()
        self.tail_updates = tail_updates
        self.tail_bytes = tail_bytes

    @property
    def idle(self) -> bool:
        """Nothing waits to be written and no write is in flight."""
        return not self._pending and not self._saving

    @property
    def pending(self) -> int:
        return len(self._pending)

    def record(self, update: bytes, author: str | None) -> None:
        now = time.monotonic()
        if not self._pending:
            self._first_change = now
        self._last_change = now
        self._pending.append(StoredUpdate(update, author, datetime.now(UTC)))
        self._dirty.set()

    async def run(self) -> None:
        """Writes batches for as long as the room lives. Cancel to stop; flush first."""
        limits = self._limits
        while True:
            await self._dirty.wait()
            while True:
                self._dirty.clear()
                due = min(
                    self._last_change + limits.save_debounce,
                    self._first_change + limits.save_max_delay,
                )
                remaining = due - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    async with asyncio.timeout(remaining):
                        await self._dirty.wait()
                except TimeoutError:
                    break
            await self.flush(retry=True)

    async def flush(self, *, retry: bool) -> None:
        """Appends everything pending. With ``retry``, keeps trying until it succeeds.

        Raises:
            Exception: the store's error, when ``retry`` is false.
        """
        delay = self._limits.save_retry_initial
        async with self._lock:
            while self._pending:
                try:
                    await self._append_pending()
                except Exception:
                    metrics.SAVE_FAILURES.inc()
                    log.exception(
                        "save failed; keeping %d updates in memory",
                        len(self._pending),
                        extra={"document": self._name, "retry_in": delay},
                    )
                    if not retry:
                        raise
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self._limits.save_retry_max)
        await self._maybe_compact()

    async def _append_pending(self) -> None:
        batch = list(self._pending)
        self._saving = True
        started = time.perf_counter()
        try:
            await self._store.append(self._name, batch)
        finally:
            self._saving = False
        metrics.SAVE_LATENCY.observe(time.perf_counter() - started)
        del self._pending[: len(batch)]
        if self._pending:
            self._first_change = time.monotonic()
        self.tail_updates += len(batch)
        self.tail_bytes += sum(len(u.data) for u in batch)

    async def _maybe_compact(self) -> None:
        limits = self._limits
        if (
            self.tail_updates < limits.compact_after_updates
            and self.tail_bytes < limits.compact_after_bytes
        ):
            return
        try:
            await self._store.compact(self._name)
        except Exception:
            # The log is intact; compaction only speeds up the next load. Try again later.
            log.exception("compaction failed", extra={"document": self._name})
            return
        metrics.COMPACTIONS.inc()
        self.tail_updates = 0
        self.tail_bytes = 0
