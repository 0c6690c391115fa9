"""Nodes on a bus, for tests that must hold on every bus: the in-process one and Redis.

A :class:`Cluster` makes nodes (``Bus`` instances that reach each other), loses frames on
purpose (``drop``), and cuts a node off and back (``partition`` / ``heal``).
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Callable
from typing import Protocol

from redis.asyncio import Redis

from collab.adapters.redis_bus import RedisBus
from collab.busframes import Frame, decode_frame
from collab.memory import LocalBroker, LocalBus
from collab.ports import Bus

# Fast liveness for tests: a silent node is gone after half a second.
HEARTBEAT = 0.2
NODE_TIMEOUT = 1.0

DropRule = Callable[[str, Frame, Bus], bool]
"""``(channel, frame, receiving node)``: whether that frame is lost on its way there."""


class Cluster(Protocol):
    def node(self) -> Bus: ...

    def drop(self, rule: DropRule | None) -> None: ...

    def partition(self, bus: Bus) -> None: ...

    def heal(self, bus: Bus) -> None: ...

    async def aclose(self) -> None: ...


class LocalCluster:
    def __init__(self) -> None:
        self.broker = LocalBroker()

    def node(self) -> LocalBus:
        return LocalBus(self.broker, heartbeat_interval=HEARTBEAT, node_timeout=NODE_TIMEOUT)

    def drop(self, rule: DropRule | None) -> None:
        if rule is None:
            self.broker.drop = None
            return

        def drop(channel: str, data: bytes, bus: LocalBus) -> bool:
            return rule(channel, decode_frame(data), bus)

        self.broker.drop = drop

    def partition(self, bus: Bus) -> None:
        assert isinstance(bus, LocalBus)
        bus.partition()

    def heal(self, bus: Bus) -> None:
        assert isinstance(bus, LocalBus)
        bus.heal()

    async def aclose(self) -> None:
        return None


REDIS_URL = os.environ.get("INKROOM_TEST_REDIS", "redis://127.0.0.1:6379/0")


def redis_available() -> str | None:
    """``None`` when Redis answers at :data:`REDIS_URL`, else why not."""
    try:
        with socket.create_connection(_redis_address(), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            if not sock.recv(16).startswith(b"+PONG"):
                return "Redis did not answer PING"
    except OSError as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def _redis_address() -> tuple[str, int]:
    rest = REDIS_URL.split("://", 1)[1].split("/", 1)[0]
    host, _, port = rest.rpartition(":")
    return host or "127.0.0.1", int(port or 6379)


class RedisCluster:
    """Nodes on the real Redis, under a key prefix of their own (one per test)."""

    def __init__(self) -> None:
        self.prefix = f"inkroom-test-{secrets.token_hex(4)}"
        self.nodes: list[RedisBus] = []

    def node(self) -> RedisBus:
        bus = RedisBus(
            REDIS_URL, prefix=self.prefix, heartbeat_interval=HEARTBEAT, node_timeout=NODE_TIMEOUT
        )
        self.nodes.append(bus)
        return bus

    def drop(self, rule: DropRule | None) -> None:
        for bus in self.nodes:
            if rule is None:
                bus.drop_incoming = None
            else:
                bus.drop_incoming = _receiver_rule(rule, bus)

    def partition(self, bus: Bus) -> None:
        assert isinstance(bus, RedisBus)
        bus.partition()

    def heal(self, bus: Bus) -> None:
        assert isinstance(bus, RedisBus)
        bus.heal()

    async def aclose(self) -> None:
        redis = Redis.from_url(REDIS_URL)
        try:
            keys = [k async for k in redis.scan_iter(match=f"{self.prefix}:*")]
            if keys:
                await redis.delete(*keys)
        finally:
            await redis.aclose()


def _receiver_rule(rule: DropRule, bus: RedisBus) -> Callable[[str, bytes], bool]:
    def drop(channel: str, data: bytes) -> bool:
        return rule(channel, decode_frame(data), bus)

    return drop
