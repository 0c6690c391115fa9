"""The SFU of one node: its calls, their tasks, and the plain calls ``server`` uses.

``server`` authenticates a WebSocket, then :meth:`Sfu.join` returns a :class:`Session`
that takes the client's text frames and writes replies to the given outbox; policy
arrives through :meth:`Sfu.set_policy`. Nothing here knows about tokens, documents or
Starlette.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from types import TracebackType
from typing import Any

from . import metrics
from .call import Call, SfuConfig
from .errors import ErrorCode, SfuError
from .hooks import ask_for_opus_fec_and_dtx, use_loopback_only
from .participant import Outbox, Participant
from .placement import LEASE_TTL, CallElsewhere, Host, Leases, LocalLeases
from .policy import ClassPolicy, Member
from .signaling import Error, Joined, Leave, parse

log = logging.getLogger("inkroom.sfu")


class Session:
    """One participant's signaling: feed it text frames with :meth:`receive`."""

    def __init__(self, sfu: Sfu, call: Call, participant: Participant) -> None:
        self._sfu = sfu
        self.call = call
        self.participant = participant

    @property
    def left(self) -> bool:
        return self.participant.closed

    async def receive(self, text: str | bytes) -> None:
        """Parses and acts on one message. A malformed or refused one gets an ``error``
        reply and changes nothing else; this never raises for what a client sends."""
        about = None
        try:
            message = parse(text)
            about = type(message).__name__.lower()
            if isinstance(message, Leave):
                await self.leave()
                return
            await self.call.handle(self.participant, message)
        except SfuError as exc:
            self.participant.send(Error(exc.code, str(exc), about))
        except Exception:
            # A bug or an aiortc failure on one request must not take the call down.
            log.exception("signaling request failed", extra={"participant": self.participant.id})
            self.participant.send(Error(ErrorCode.INTERNAL, "internal error", about))

    async def leave(self) -> None:
        await self._sfu._leave(self.call, self.participant)


class Sfu:
    """Owns every call of this node and every task serving one (an async context)."""

    def __init__(
        self,
        config: SfuConfig | None = None,
        *,
        leases: Leases | None = None,
        me: Host | None = None,
        lease_ttl: float = LEASE_TTL,
    ) -> None:
        self.config = config or SfuConfig()
        self.calls: dict[str, Call] = {}
        # Set while any call is open: the speech watcher sleeps on it otherwise, so an
        # idle node with no call does not wake ten times a second.
        self._calls_open = asyncio.Event()
        # Placement across nodes (sfu/placement.py): alone, every call is this node's.
        self.leases: Leases = leases or LocalLeases()
        self.me = me or Host("local", "")
        self.lease_ttl = lease_ttl
        self._policies: dict[str, ClassPolicy] = {}
        self._tg: asyncio.TaskGroup | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> Sfu:
        ask_for_opus_fec_and_dtx()
        if self.config.loopback_only:
            use_loopback_only()
        self._tg = asyncio.TaskGroup()
        await self._tg.__aenter__()
        self._spawn(self._watch_speech(), "sfu-speech")
        self._spawn(self._renew_leases(), "sfu-leases")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._tg is not None
        try:
            for call in tuple(self.calls.values()):
                await asyncio.shield(self._close_call(call))
        finally:
            for task in tuple(self._tasks):
                task.cancel()
            await self._tg.__aexit__(exc_type, exc, tb)

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        if self._tg is None:
            coro.close()
            raise RuntimeError("Sfu used outside 'async with'")
        task = self._tg.create_task(self._guard(coro, name), name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _guard(coro: Coroutine[Any, Any, None], name: str) -> None:
        # One failed PLI or negotiation must not cancel the node's task group.
        try:
            await coro
        except Exception:
            log.exception("sfu task failed", extra={"task": name})

    async def _watch_speech(self) -> None:
        links_checked = time.monotonic()
        while True:
            await self._calls_open.wait()
            await asyncio.sleep(self.config.speech_check_interval)
            now = time.monotonic()
            for call in tuple(self.calls.values()):
                call.check_speech(now)
            if now - links_checked >= 1.0:  # link estimates step up after silences
                links_checked = now
                for call in tuple(self.calls.values()):
                    call.check_links(now)

    async def _renew_leases(self) -> None:
        while True:
            await asyncio.sleep(self.lease_ttl / 3)
            for classroom, call in tuple(self.calls.items()):
                if not call.placed:
                    continue
                try:
                    if not await self.leases.renew(classroom, self.me, self.lease_ttl):
                        # Expired (a store outage longer than the TTL) and maybe taken:
                        # this call goes on here; new joins may land on the other node.
                        log.warning("call lease lost", extra={"classroom": classroom})
                        await self.leases.acquire(classroom, self.me, self.lease_ttl)
                except ConnectionError:
                    log.warning("call lease not renewed", extra={"classroom": classroom})

    async def _place(self, classroom: str) -> bool:
        """Takes the call's lease; ``False`` when the lease store is out of reach (the
        call is then hosted here, unrecorded, as a single node would).

        Raises:
            CallElsewhere: another node hosts the call.
        """
        try:
            holder = await self.leases.acquire(classroom, self.me, self.lease_ttl)
        except ConnectionError:
            log.warning("call leases unavailable; hosting here", extra={"classroom": classroom})
            return False
        if holder.node != self.me.node:
            raise CallElsewhere(holder)
        return True

    # -- the plain calls ---------------------------------------------------------------

    def set_policy(self, classroom: str, policy: ClassPolicy) -> None:
        """The classroom's policy, now and for a call opened later (until forgotten)."""
        self._policies[classroom] = policy
        call = self.calls.get(classroom)
        if call is not None:
            call.set_policy(policy)

    def forget_policy(self, classroom: str) -> None:
        self._policies.pop(classroom, None)

    async def join(
        self,
        classroom: str,
        member: Member,
        name: str,
        outbox: Outbox,
        *,
        ice_servers: list[dict[str, Any]] | None = None,
        placed: bool = True,
    ) -> Session:
        """Joins (opening the call if need be) and sends ``joined`` to ``outbox``.
        ``placed=False``: a call of this node only (the /check round trip), no lease.

        Raises:
            CallFull: the call is at its participant limit.
            CallElsewhere: another node hosts the call (join there).
        """
        call = self.calls.get(classroom)
        leased = False
        if call is None and placed:
            leased = await self._place(classroom)
            call = self.calls.get(classroom)  # another join may have opened it meanwhile
        if call is None:
            call = Call(classroom, self.config, self._spawn, self._policies.get(classroom))
            call.placed = leased
            self.calls[classroom] = call
            self._calls_open.set()
            metrics.CALLS.set(len(self.calls))
            log.info("call opened", extra={"classroom": classroom})
        try:
            participant = call.join(member, name, outbox)
        except SfuError:
            if not call.participants:
                await self._close_call(call)
            raise
        participant.send(
            Joined(
                participant.id,
                member.user_id,
                member.role.value,
                ice_servers or [],
                call.roster(),
                call.policy.to_wire(),
            )
        )
        return Session(self, call, participant)

    async def _leave(self, call: Call, participant: Participant) -> None:
        await call.leave(participant)
        if not call.participants and self.calls.get(call.classroom) is call:
            await self._close_call(call)

    async def _close_call(self, call: Call) -> None:
        if self.calls.get(call.classroom) is call:
            del self.calls[call.classroom]
            if not self.calls:
                self._calls_open.clear()
            metrics.CALLS.set(len(self.calls))
            log.info("call closed", extra={"classroom": call.classroom})
        await call.close()
        if call.placed and call.classroom not in self.calls:
            try:
                async with asyncio.timeout(5):
                    await self.leases.release(call.classroom, self.me)
            except (ConnectionError, TimeoutError):
                # It expires by itself; until then joins elsewhere are sent here.
                log.warning("call lease not released", extra={"classroom": call.classroom})


__all__ = ["Session", "Sfu"]
