"""The rooms a node holds: single-flight loading, reference counting and unloading."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from types import TracebackType
from typing import Any

from . import metrics
from .budgets import UserBudgets
from .errors import CollabError, NodeFull, QuotaExceeded, RoomUnavailable
from .journal import Journal, Saver
from .limits import Limits
from .ports import Bus, DefaultHooks, DocumentName, Hooks, Peer, Store
from .replication import Replicator
from .room import Room

log = logging.getLogger("inkroom.collab.registry")


class Registry:
    """Owns every room of this node and every task that serves one.

    Use as an async context manager: entering starts the reaper, leaving flushes every
    room to the store (with a deadline) and cancels the remaining tasks.
    """

    def __init__(
        self,
        store: Store,
        bus: Bus,
        *,
        hooks: Hooks | None = None,
        limits: Limits | None = None,
    ) -> None:
        self._store = store
        self._bus = bus
        self._hooks: Hooks = hooks or DefaultHooks()
        self.limits = limits or Limits()
        self._rooms: dict[DocumentName, Room] = {}
        self._loading: dict[DocumentName, asyncio.Future[Room]] = {}
        self._users: dict[DocumentName, int] = {}
        # When each room's last user (connection or hold) let go; absent while in use.
        self._idle_since: dict[DocumentName, float] = {}
        self._saver = Saver(store, self.limits)
        self.awareness_budgets = UserBudgets(
            self.limits.awareness_bytes_per_second, self.limits.awareness_byte_burst
        )
        self._tg: asyncio.TaskGroup | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False
        # Documents whose loads keep failing: consecutive failures (cleared on success).
        self.load_failures: dict[DocumentName, int] = {}

    @property
    def rooms(self) -> dict[DocumentName, Room]:
        return self._rooms

    @property
    def bus(self) -> Bus:
        return self._bus

    def end_connections(
        self, match: Callable[[DocumentName, Peer], bool], error: CollabError
    ) -> int:
        """Closes every connection of this node ``match`` selects with ``error``'s close
        code; returns how many."""
        ended = 0
        for room in list(self._rooms.values()):
            for client in list(room.clients.values()):
                if match(room.name, client.peer):
                    client.fail(error)
                    ended += 1
        return ended

    def degraded(self) -> dict[str, list[str]]:
        """Documents this node cannot save or load right now, by problem."""
        out: dict[str, list[str]] = {}
        if self._saver.failing:
            out["saves_failing"] = sorted(self._saver.failing)
        if self.load_failures:
            out["loads_failing"] = sorted(self.load_failures)
        if not self._bus.connected:
            # Still serving its own clients; other nodes' changes arrive on reconnect.
            out["bus"] = ["disconnected"]
        return out

    async def save_now(self) -> None:
        """Writes every pending update to the store now (the admin inspector reads the
        log). Raises the store's error."""
        await self._saver.flush(retry=False, drain=False)

    async def __aenter__(self) -> Registry:
        self._tg = asyncio.TaskGroup()
        await self._tg.__aenter__()
        self._tasks.add(self._tg.create_task(self._reap_forever(), name="registry-reaper"))
        self._tasks.add(self._tg.create_task(self._saver.run(), name="registry-saver"))
        self._tasks.add(self._tg.create_task(self._bus.run(), name="registry-bus"))
        self._tasks.add(self._tg.create_task(self._anti_entropy_forever(), name="anti-entropy"))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._tg is not None
        self._closing = True
        try:
            await asyncio.shield(self._flush_all())
        finally:
            for task in self._tasks:
                task.cancel()
            await self._tg.__aexit__(exc_type, exc, tb)

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        assert self._tg is not None
        task = self._tg.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- acquire / release -----------------------------------------------------------

    async def acquire(self, name: DocumentName) -> Room:
        """Returns the loaded room for ``name``, loading it once however many ask at once.

        Raises:
            RoomUnavailable: the store failed; nothing was cached, the next call retries.
            NodeFull: this node holds ``max_rooms`` documents.
        """
        room = self._rooms.get(name)
        if room is None:
            future = self._loading.get(name)
            if future is None:
                if self._closing:
                    raise RoomUnavailable("node is shutting down")
                if len(self._rooms) + len(self._loading) >= self.limits.max_rooms:
                    raise NodeFull(f"node holds {self.limits.max_rooms} documents")
                namespace = _namespace(name)
                held = sum(1 for n in (*self._rooms, *self._loading) if _namespace(n) == namespace)
                if held >= self.limits.max_rooms_per_namespace:
                    raise QuotaExceeded(
                        f"{namespace!r} holds {self.limits.max_rooms_per_namespace} documents"
                    )
                future = asyncio.get_running_loop().create_future()
                self._loading[name] = future
                # The load belongs to the registry, not to the first caller: if that
                # caller is cancelled, the others waiting on the same load still get it.
                self._spawn(self._load(name, future), f"load:{name}")
            room = await asyncio.shield(future)
        self._users[name] = self._users.get(name, 0) + 1
        self._idle_since.pop(name, None)
        return room

    @contextlib.asynccontextmanager
    async def hold(self, name: DocumentName) -> AsyncIterator[Room]:
        """Keeps ``name`` loaded for the duration of the block (raises as :meth:`acquire`)."""
        room = await self.acquire(name)
        try:
            yield room
        finally:
            self.release(room)

    def release(self, room: Room) -> None:
        count = self._users.get(room.name, 0) - 1
        if count <= 0:
            self._users.pop(room.name, None)
            self._idle_since[room.name] = asyncio.get_running_loop().time()
        else:
            self._users[room.name] = count

    async def _load(self, name: DocumentName, future: asyncio.Future[Room]) -> None:
        started = time.perf_counter()
        replicator: Replicator | None = None
        try:
            # Subscribed before loading: whatever another node publishes from now on is
            # held until the room exists, and the catch-up after the load fetches the
            # rest (updates applied elsewhere but not yet saved).
            replicator = Replicator(name, self._bus, self.limits)
            try:
                async with asyncio.timeout(self.limits.bus_ready_timeout):
                    await replicator.ready()
            except TimeoutError:
                log.warning(
                    "bus subscription not confirmed; loading anyway", extra={"document": name}
                )
            loaded = await self._store.load(name)
            doc = loaded.to_doc()
            journal = Journal(
                name,
                on_dirty=self._saver.mark_dirty,
                tail_updates=len(loaded.tail),
                tail_bytes=loaded.tail_bytes,
                snapshot_bytes=len(loaded.snapshot or b""),
            )
            room = Room(
                name,
                doc,
                limits=self.limits,
                hooks=self._hooks,
                journal=journal,
                replicator=replicator,
                size=len(loaded.snapshot or b"") + loaded.tail_bytes,
                authored=list(zip(loaded.tail, loaded.tail_authors, strict=False)),
            )
            self._hooks.on_room_loaded(room)
            replicator.attach(room)
        except Exception:
            if replicator is not None:
                replicator.close()
            self.load_failures[name] = self.load_failures.get(name, 0) + 1
            if len(self.load_failures) > _MAX_TRACKED_FAILURES:  # names are client-chosen
                del self.load_failures[next(iter(self.load_failures))]
            metrics.FAILING_DOCUMENTS.set(len(self.load_failures) + len(self._saver.failing))
            log.exception(
                "document load failed",
                extra={"document": name, "failures": self.load_failures[name]},
            )
            future.set_exception(RoomUnavailable(f"could not load {name!r}"))
            future.exception()  # marks it retrieved: no "never retrieved" noise if nobody waits
            self._loading.pop(name, None)
            return
        metrics.LOAD_LATENCY.observe(time.perf_counter() - started)
        self.load_failures.pop(name, None)
        self._rooms[name] = room
        self._loading.pop(name, None)
        metrics.ROOMS.set(len(self._rooms))
        future.set_result(room)
        log.info("document loaded", extra={"document": name, "tail": len(loaded.tail)})

    # -- unloading -------------------------------------------------------------------

    async def _reap_forever(self) -> None:
        interval = max(0.05, min(1.0, self.limits.unload_grace / 4))
        while True:
            await asyncio.sleep(interval)
            self.reap()

    def reap(self) -> list[DocumentName]:
        """Unloads rooms empty for longer than the grace period with nothing left to save."""
        now = asyncio.get_running_loop().time()
        unloaded = []
        for name, room in list(self._rooms.items()):
            idle_since = self._idle_since.get(name)
            if idle_since is None or now - idle_since < self.limits.unload_grace:
                continue
            # Other nodes' updates not yet confirmed saved are written before the room
            # goes (normally none are left this long after the last change).
            room.replicator.keep_unsaved()
            if room.journal.idle:
                self._unload(room)
                unloaded.append(name)
        return unloaded

    def _unload(self, room: Room) -> None:
        del self._rooms[room.name]
        del self._idle_since[room.name]
        try:
            self._hooks.on_room_unloaded(room)
        finally:
            room.close()
        metrics.ROOMS.set(len(self._rooms))
        log.info("document unloaded", extra={"document": room.name})
        if room.journal.tail_updates >= self.limits.fold_on_unload_updates:
            # The next load (often a board left mid-lesson) reads one snapshot instead of
            # the tail. The store folds from its own rows, so a reload meanwhile (or
            # another node's writes) can only leave a longer tail, never a wrong one.
            self._spawn(self._fold(room), f"fold:{room.name}")

    async def _fold(self, room: Room) -> None:
        await self._saver.compact(room.journal)

    async def _anti_entropy_forever(self) -> None:
        interval = self.limits.anti_entropy_interval
        while True:
            await asyncio.sleep(interval)
            for room in list(self._rooms.values()):
                try:
                    room.replicator.tick()
                except Exception:
                    log.exception("anti-entropy failed", extra={"document": room.name})

    async def _flush_all(self) -> None:
        rooms = list(self._rooms.values())
        for room in rooms:
            room.replicator.keep_unsaved()
        try:
            async with asyncio.timeout(self.limits.shutdown_flush_timeout):
                await self._saver.flush(retry=True)
        except TimeoutError:
            log.error("shutdown flush timed out")  # noqa: TRY400 - the timeout is the news
        lost = sum(r.journal.pending for r in rooms)
        if lost:
            log.error("unsaved updates at shutdown", extra={"updates": lost})


_MAX_TRACKED_FAILURES = 1000


def _namespace(name: str) -> str:
    return name.split("/", 1)[0]
