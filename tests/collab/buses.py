"""Nodes on a bus, for tests that must hold on every bus: the in-process one and Redis.

A :class:`Cluster` makes nodes (``Bus`` instances that reach each other), loses frames on
purpose (``drop``), and cuts a node off and back (``partition`` / ``heal``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from collab.busframes import Frame, decode_frame
from collab.memory import LocalBroker, LocalBus
from collab.ports import Bus

# Fast liveness for tests: a silent node is gone after half a second.
HEARTBEAT = 0.1
NODE_TIMEOUT = 0.5

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
