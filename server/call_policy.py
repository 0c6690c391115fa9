"""Feeds the SFU the tutor's call controls, read from the classroom document.

The controls are keys of the ``state`` map of ``{C}/class``, which only tutors may write
(:mod:`server.classroom` reverts anyone else's change): ``callMuted`` and ``callFloor``
(lists of user ids), ``callSpotlight`` (a user id or null) and ``callStudentVideo``
(true unless set false). While a call has participants, the document stays loaded and
an observer of ``state`` pushes every change into the SFU, so what the class shows and
what is forwarded never disagree. Nothing here keeps a copy of the controls.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any

from pycrdt import Map, Subscription

from collab.ports import DocumentName
from collab.registry import Registry
from collab.room import Room
from sfu.policy import ClassPolicy
from sfu.service import Sfu

from .classroom import CLASS_SUFFIX

log = logging.getLogger("inkroom.server.call_policy")

MAX_IDS = 1000


def _ids(value: Any) -> frozenset[str]:
    if hasattr(value, "to_py"):  # a nested shared type rather than a plain JSON value
        value = value.to_py()
    items: Iterable[Any]
    if isinstance(value, dict):
        items = (k for k, v in value.items() if v)
    elif isinstance(value, list):
        items = value
    else:
        return frozenset()
    return frozenset(v for v in list(items)[:MAX_IDS] if isinstance(v, str))


def policy_from_state(state: Map[Any]) -> ClassPolicy:
    """The call controls in a classroom document's ``state`` map; malformed values read as
    their defaults (the map is staff-written, but a bug in a client must not stop a call)."""
    spotlight = state.get("callSpotlight")
    return ClassPolicy(
        muted=_ids(state.get("callMuted")),
        floor=_ids(state.get("callFloor")),
        spotlight=spotlight if isinstance(spotlight, str) else None,
        student_video=state.get("callStudentVideo") is not False,
    )


@dataclass
class _Watch:
    room: Room
    state: Map[Any]
    subscription: Subscription
    users: int = 0
    scheduled: bool = False


class CallPolicyFeed:
    """One observer per classroom with a call, shared by its participants' connections."""

    def __init__(self, registry: Registry, sfu: Sfu) -> None:
        self._registry = registry
        self._sfu = sfu
        self._watches: dict[str, _Watch] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    @contextlib.asynccontextmanager
    async def watch(self, classroom: str) -> AsyncIterator[None]:
        """Keeps ``classroom``'s policy flowing into the SFU for the duration of the block.

        Raises:
            CollabError: the classroom document could not be loaded.
        """
        lock = self._locks.setdefault(classroom, asyncio.Lock())
        async with lock:  # the first two participants must not both load and observe
            watch = self._watches.get(classroom)
            if watch is None:
                watch = await self._start(classroom)
            watch.users += 1
        try:
            yield
        finally:
            watch.users -= 1
            if watch.users == 0 and self._watches.get(classroom) is watch:
                del self._watches[classroom]
                self._locks.pop(classroom, None)
                watch.state.unobserve(watch.subscription)
                self._registry.release(watch.room)
                self._sfu.forget_policy(classroom)

    async def _start(self, classroom: str) -> _Watch:
        room = await self._registry.acquire(DocumentName(classroom + CLASS_SUFFIX))
        state = room.doc.get("state", type=Map)
        loop = asyncio.get_running_loop()

        def changed(_: object) -> None:
            # Read after the transaction that fired this has ended; one push per burst.
            if not watch.scheduled:
                watch.scheduled = True
                loop.call_soon(self._push, classroom, watch)

        watch = _Watch(room, state, state.observe(changed))
        self._watches[classroom] = watch
        self._sfu.set_policy(classroom, policy_from_state(state))
        return watch

    def _push(self, classroom: str, watch: _Watch) -> None:
        watch.scheduled = False
        if self._watches.get(classroom) is watch:
            policy = policy_from_state(watch.state)
            log.info("call policy", extra={"classroom": classroom, **policy.to_wire()})
            self._sfu.set_policy(classroom, policy)
