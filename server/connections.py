"""Every open WebSocket of this node, by user and classroom, so the server can end them.

``end_user`` and ``end_classroom`` close matching connections with a 44xx code and a
reason (``revoked``, ``removed``, ``archived``): the stock client stops reconnecting on
44xx. A connection is also ended when the token it opened with expires (4401, "token
expired"): the web page renews its token before that and reconnects at once with the new
one, so revoking an invite takes effect at the latest one token lifetime later.

When a student's last connection to ``C/class`` closes, their raised hand is lowered: the
server writes it, as the owner of the classroom document.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from pycrdt import Map

from collab.ports import DocumentName
from collab.registry import Registry

from .attendance import OpenVisit, VisitLog
from .auth import Claims, Role
from .classroom import CLASS_SUFFIX
from .errors import EXPIRED

log = logging.getLogger("inkroom.server.connections")
_ids = itertools.count(1)


class Closable(Protocol):
    async def close(self, code: int, reason: str = "") -> None: ...


def classroom_of(document: str) -> str:
    """``C`` for ``C``, ``C/board``, ``C/class``..."""
    return document.split("/", 1)[0]


@dataclass(eq=False)
class _Open:
    id: int
    user_id: str
    role: str
    classroom: str
    document: str
    connection: Closable
    timer: asyncio.TimerHandle | None = None
    ended: bool = False
    name: str = ""
    device: str = ""
    address: str = ""
    since: float = 0.0


class Connections:
    """The open connections of this node; each node ends its own."""

    def __init__(
        self, registry: Registry | None = None, attendance: VisitLog | None = None
    ) -> None:
        self._open: dict[int, _Open] = {}
        self._registry = registry
        self._attendance = attendance
        self._tasks: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        return len(self._open)

    @contextlib.asynccontextmanager
    async def track(
        self, claims: Claims, document: str, connection: Closable
    ) -> AsyncIterator[None]:
        entry = _Open(
            next(_ids),
            claims.user_id,
            claims.role.value,
            classroom_of(document),
            document,
            connection,
            name=claims.name,
            device=getattr(connection, "device", ""),
            address=getattr(connection, "address", ""),
            since=time.time(),
        )
        visit = await self._visit_opened(entry)
        # Armed only once nothing can be cancelled before the ``finally`` that disarms it.
        delay = claims.expires_at - time.time()
        entry.timer = asyncio.get_running_loop().call_later(max(0.0, delay), self._expire, entry)
        self._open[entry.id] = entry
        try:
            yield
        finally:
            self._open.pop(entry.id, None)
            entry.timer.cancel()
            if visit is not None:
                assert self._attendance is not None
                self._attendance.closed(visit)
            if claims.role is Role.STUDENT and document.endswith(CLASS_SUFFIX):
                self._lower_hand_if_gone(entry)

    def entries(self) -> list[_Open]:
        """The open connections (for the admin inspector)."""
        return list(self._open.values())

    async def _visit_opened(self, entry: _Open) -> OpenVisit | None:
        if self._attendance is None:
            return None
        try:
            return await self._attendance.opened(
                classroom=entry.classroom,
                document=entry.document,
                user_id=entry.user_id,
                name=entry.name,
                role=entry.role,
                device=entry.device,
                address=entry.address,
            )
        except Exception:  # attendance is evidence, not a gate: the lesson goes on
            log.exception("attendance not recorded", extra={"document": entry.document})
            return None

    async def flush_attendance(self) -> None:
        """Waits until the connections opened and closed so far are in the table."""
        if self._attendance is not None:
            await self._attendance.flush()

    def _expire(self, entry: _Open) -> None:
        self._spawn(self._end([entry], 4401, EXPIRED))

    def _spawn(self, coro: Any) -> None:
        # Owned here: :meth:`aclose` (the app lifespan) cancels and awaits what is left.
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def aclose(self) -> None:
        """Cancels the closing tasks still running and waits for them (shutdown)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.flush_attendance()

    async def _end(self, entries: list[_Open], code: int, reason: str) -> int:
        todo = [e for e in entries if not e.ended]
        for e in todo:
            e.ended = True
            log.info(
                "ending connection: %s",
                reason,
                extra={"document": e.document, "user": e.user_id, "code": code},
            )
        await asyncio.gather(*(e.connection.close(code, reason) for e in todo))
        return len(todo)

    async def end(self, match: Callable[[_Open], bool], code: int, reason: str) -> int:
        return await self._end([e for e in self._open.values() if match(e)], code, reason)

    async def end_user(
        self, user_id: str, code: int, reason: str, *, classroom: str | None = None
    ) -> int:
        """Ends every open connection of ``user_id`` (in ``classroom`` only, if given)."""
        return await self.end(
            lambda e: e.user_id == user_id and (classroom is None or e.classroom == classroom),
            code,
            reason,
        )

    async def end_classroom(self, classroom: str, code: int, reason: str) -> int:
        """Ends every open connection to the classroom's documents."""
        return await self.end(lambda e: e.classroom == classroom, code, reason)

    def users(self, classroom: str) -> set[str]:
        return {e.user_id for e in self._open.values() if e.classroom == classroom}

    def _lower_hand_if_gone(self, entry: _Open) -> None:
        if self._registry is None:
            return
        if any(
            e.user_id == entry.user_id and e.document == entry.document for e in self._open.values()
        ):
            return
        room = self._registry.rooms.get(DocumentName(entry.document))
        if room is None:
            return
        hands = room.doc.get("hands", type=Map)
        if entry.user_id in hands:
            with room.doc.transaction():
                del hands[entry.user_id]
            log.info("hand lowered on leave", extra={"document": entry.document})
