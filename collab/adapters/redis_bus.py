"""The :class:`~collab.ports.Bus` on Redis (redis-py asyncio).

Documents: one pub/sub channel per document, ``{prefix}:doc:{name}``; node heartbeats on
``{prefix}:nodes``. Pub/sub is at-most-once: frames carry per-node, per-document sequence
numbers (:mod:`collab.fanout` turns a gap into a catch-up) and every (re)connection makes
every room catch up, so a lost frame is repaired rather than silently diverging.

Control calls: a Redis Stream, ``{prefix}:control``, read by one consumer group per node,
so each node gets every call at least once (an entry is acknowledged after it is applied,
and a node reconnecting reads its unacknowledged entries first).

Redis down: frames are dropped (counted), :attr:`RedisBus.connected` is false (``/readyz``
says degraded), the node keeps serving its own clients, and reconnects with backoff.
One connection publishes (frames leave in order, pipelined), one subscribes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Final

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError, ResponseError

from ..busframes import Frame, Kind
from ..errors import BusUnavailable
from ..fanout import NODES_CHANNEL, FramedBus
from ..ports import ControlCall, ControlKind, NodeId

log = logging.getLogger("inkroom.collab.redis")

_OUTBOX: Final = 50_000
_BATCH: Final = 512
_CONTROL_MAXLEN: Final = 10_000
_BACKOFF_MAX: Final = 2.0
_DEAD_GROUP_IDLE_MS: Final = 3_600_000


class _Lost(Exception):
    """The subscription stopped hearing this node's own heartbeats: the link is dead."""


class RedisBus(FramedBus):
    """Nodes sharing one Redis. Run :meth:`run` (the registry does) to connect."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "inkroom",
        node_id: NodeId | None = None,
        heartbeat_interval: float = 1.0,
        node_timeout: float = 3.0,
        drop_rate: float = 0.0,
    ) -> None:
        super().__init__(node_id, heartbeat_interval=heartbeat_interval, node_timeout=node_timeout)
        self._url = url
        self._prefix = prefix + ":"
        self._outbox: deque[tuple[str, bytes]] = deque()
        self._wake = asyncio.Event()
        self._channels: set[str] = {NODES_CHANNEL}
        self._subscribed: set[str] = set()
        self._changes = asyncio.Event()
        self._waiters: dict[str, list[asyncio.Future[None]]] = {}
        self._connected = False
        self._redis: Redis | None = None
        self._sessions = 0
        self._control_key = self._prefix + "control"
        self._group = f"node:{self.node_id}"
        # Fault injection (tests, never production): the share of incoming document frames
        # lost on purpose, and a rule deciding it frame by frame.
        self._drop_rate = drop_rate
        self.drop_incoming: Callable[[str, bytes], bool] | None = None
        self._m.connected.set(0)

    @property
    def connected(self) -> bool:
        return self._connected and not self.partitioned

    # -- transport primitives ----------------------------------------------------------

    def _transmit(self, channel: str, frame: bytes) -> None:
        if not self.connected:
            self._m.dropped("disconnected")
            return
        if len(self._outbox) >= _OUTBOX:
            # Redis cannot keep up: shed, and let catch-up repair it on the other side.
            self._m.dropped("outbox_full")
            return
        self._outbox.append((self._prefix + channel, frame))
        self._wake.set()

    def _join(self, channel: str) -> None:
        self._channels.add(channel)
        self._changes.set()

    def _leave(self, channel: str) -> None:
        self._channels.discard(channel)
        self._changes.set()

    async def _joined(self, channel: str) -> None:
        if not self._connected or channel in self._subscribed:
            return
        future = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(channel, []).append(future)
        await future

    # -- control calls -------------------------------------------------------------------

    async def publish_control(self, call: ControlCall) -> None:
        redis = self._redis
        if redis is None or not self.connected:
            raise BusUnavailable("bus is disconnected")
        body = {"kind": call.kind.value, "user": call.user, "classroom": call.classroom}
        body["reason"] = call.reason
        try:
            await redis.xadd(
                self._control_key,
                {"call": json.dumps(body)},
                maxlen=_CONTROL_MAXLEN,
                approximate=True,
            )
        except (RedisError, OSError) as exc:
            raise BusUnavailable(f"control call not recorded: {type(exc).__name__}") from exc

    def _apply_control(self, fields: dict[bytes, bytes]) -> None:
        try:
            body = json.loads(fields[b"call"])
            call = ControlCall(
                ControlKind(body["kind"]),
                user=body.get("user"),
                classroom=body.get("classroom"),
                reason=str(body.get("reason", ""))[:200],
            )
        except (KeyError, ValueError, TypeError):
            log.warning("bad control entry skipped")
            return
        self._deliver_control(call)

    # -- lifecycle -----------------------------------------------------------------------

    async def run(self) -> None:
        backoff = 0.1
        try:
            while True:
                started = time.monotonic()
                try:
                    await self._session()
                except* (RedisError, OSError, _Lost) as group:
                    log.warning(
                        "redis connection lost; serving this node's clients alone",
                        extra={"error": repr(group.exceptions[0])[:200]},
                    )
                except* Exception:
                    log.exception("redis bus session failed; reconnecting")
                self._disconnected()
                if time.monotonic() - started > 10:
                    backoff = 0.1
                await asyncio.sleep(backoff * (0.5 + random.random()))
                backoff = min(backoff * 2, _BACKOFF_MAX)
        finally:
            await asyncio.shield(self._farewell())

    async def _session(self) -> None:
        redis: Redis = Redis.from_url(
            self._url,
            retry=Retry(NoBackoff(), 0),  # every failure surfaces: we resync on reconnect
            socket_connect_timeout=2,
            socket_timeout=5,
            socket_keepalive=True,
            # Named, so an operator (or a fault-injection test) can find this node's links.
            client_name=f"{self._prefix}{self.node_id}",
        )
        pubsub = redis.pubsub()
        try:
            await redis.ping()
            await self._ensure_group(redis)
            channels = set(self._channels)
            await pubsub.subscribe(*(self._prefix + c for c in channels))
            # Confirmations arrive on the reader; until then frames may be missed, and
            # the resync below asks again once connected.
            self._redis = redis
            self._connected = True
            self._sessions += 1
            self._m.connected.set(1)
            if self._sessions > 1:
                self._m.reconnects.inc()
            log.info("redis connected", extra={"node": self.node_id, "session": self._sessions})
            self.echo_at = time.monotonic()
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._read(pubsub))
                tg.create_task(self._publish(redis))
                tg.create_task(self._manage(pubsub))
                tg.create_task(self._beat())
                tg.create_task(self._read_control(redis))
        finally:
            self._redis = None
            with contextlib.suppress(Exception):
                await pubsub.aclose()  # type: ignore[no-untyped-call]
            with contextlib.suppress(Exception):
                await redis.aclose()

    def _disconnected(self) -> None:
        was = self._connected
        self._connected = False
        self._subscribed.clear()
        self._outbox.clear()
        self._m.connected.set(0)
        for waiters in self._waiters.values():
            for future in waiters:
                if not future.done():
                    future.set_result(None)
        self._waiters.clear()
        if was:
            log.warning("redis disconnected", extra={"node": self.node_id})

    async def _farewell(self) -> None:
        """Best effort, bounded: tell the others now rather than after the timeout."""
        if not self._connected:
            return
        with contextlib.suppress(Exception):
            async with asyncio.timeout(1.0):
                redis: Redis = Redis.from_url(self._url, socket_connect_timeout=1)
                try:
                    frame = bytes(Frame(Kind.BYE, self.node_id))
                    await redis.publish(self._prefix + NODES_CHANNEL, frame)
                    await redis.xgroup_destroy(self._control_key, self._group)
                finally:
                    await redis.aclose()
        self._disconnected()

    # -- the session's tasks -------------------------------------------------------------

    async def _read(self, pubsub: PubSub) -> None:
        prefix_len = len(self._prefix)
        while True:
            _raise_if_cancelled()
            message: dict[str, Any] | None = await pubsub.get_message(
                ignore_subscribe_messages=False, timeout=1.0
            )
            if message is None:
                continue
            kind = message["type"]
            channel = message["channel"]
            name = (channel.decode() if isinstance(channel, bytes) else str(channel))[prefix_len:]
            if kind == "message":
                data: bytes = message["data"]
                if self.partitioned or self._dropped(name, data):
                    continue
                self.receive(name, data)
            elif kind == "subscribe":
                self._subscribed.add(name)
                if len(self._subscribed) == 1 and self._sessions > 0:
                    # The first confirmation of a session: every room catches up on what
                    # was published while this node was not listening.
                    self.resync()
                for future in self._waiters.pop(name, []):
                    if not future.done():
                        future.set_result(None)
            elif kind == "unsubscribe":
                self._subscribed.discard(name)

    def _dropped(self, name: str, data: bytes) -> bool:
        if name == NODES_CHANNEL:
            return False
        if self.drop_incoming is not None and self.drop_incoming(name, data):
            return True
        return self._drop_rate > 0 and random.random() < self._drop_rate

    async def _publish(self, redis: Redis) -> None:
        outbox = self._outbox
        while True:
            _raise_if_cancelled()
            await self._wake.wait()
            self._wake.clear()
            while outbox:
                batch = [outbox.popleft() for _ in range(min(len(outbox), _BATCH))]
                if len(batch) == 1:
                    await redis.publish(*batch[0])
                    continue
                async with redis.pipeline(transaction=False) as pipe:
                    for channel, frame in batch:
                        pipe.publish(channel, frame)
                    await pipe.execute()

    async def _manage(self, pubsub: PubSub) -> None:
        """Applies subscription changes the rooms made."""
        while True:
            _raise_if_cancelled()
            await self._changes.wait()
            self._changes.clear()
            wanted = {self._prefix + c for c in self._channels}
            current = {k.decode() if isinstance(k, bytes) else str(k) for k in pubsub.channels}
            add = wanted - current
            remove = current - wanted
            if add:
                await pubsub.subscribe(*add)
            if remove:
                await pubsub.unsubscribe(*remove)

    async def _beat(self) -> None:
        while True:
            _raise_if_cancelled()
            if not self.partitioned:
                self.heartbeat()
                silent = time.monotonic() - self.echo_at
                # Lenient: a busy loop must not be mistaken for a dead link.
                if silent > max(2 * self.node_timeout, 5.0):
                    raise _Lost("own heartbeats stopped coming back")
            self.check_liveness()
            await asyncio.sleep(self.heartbeat_interval)

    async def _ensure_group(self, redis: Redis) -> None:
        try:
            await redis.xgroup_create(self._control_key, self._group, id="$", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        await self._forget_dead_groups(redis)

    async def _forget_dead_groups(self, redis: Redis) -> None:
        """Destroys the groups of nodes that died without saying goodbye (kill -9): every
        consumer idle for an hour. Bounded: at most 100 groups looked at per connection."""
        groups: Any = await redis.xinfo_groups(self._control_key)
        for group in groups[:100]:
            name = group["name"].decode() if isinstance(group["name"], bytes) else group["name"]
            if name == self._group or not name.startswith("node:"):
                continue
            consumers: Any = await redis.xinfo_consumers(self._control_key, name)
            if consumers and min(int(c["idle"]) for c in consumers) > _DEAD_GROUP_IDLE_MS:
                await redis.xgroup_destroy(self._control_key, name)
                log.info("forgot a dead node's control group", extra={"group": name})

    async def _read_control(self, redis: Redis) -> None:
        # Entries delivered before a disconnect but never acknowledged come first ("0"),
        # then new ones (">").
        start = "0"
        while True:
            _raise_if_cancelled()
            reply: Any = await redis.xreadgroup(
                self._group,
                self.node_id,
                {self._control_key: start},
                count=100,
                block=1000 if start == ">" else None,
            )
            entries = reply[0][1] if reply else []
            if start == "0" and not entries:
                start = ">"
                continue
            for entry_id, fields in entries:
                if fields:
                    self._apply_control(fields)
                await redis.xack(self._control_key, self._group, entry_id)
            if start == "0" and entries:
                continue


def _raise_if_cancelled() -> None:
    """redis-py can swallow a cancellation inside a command; the loops re-raise it, or a
    task group waiting for them would wait forever."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
