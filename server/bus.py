"""The bus a node runs on: in-process alone, Redis when ``--redis-url`` is given."""

from __future__ import annotations

from collab.memory import LocalBus
from collab.ports import Bus, NodeId

from .settings import Settings


def make_bus(settings: Settings) -> Bus:
    """Raises ``RuntimeError`` for fault injection outside development."""
    if settings.bus_drop_rate and settings.env == "production":
        raise RuntimeError("INKROOM_BUS_DROP_RATE is a test setting; unset it in production")
    node_id = NodeId(settings.node_id) if settings.node_id else None
    if settings.redis_url:
        # Imported only when used: a single node never loads the Redis client.
        from collab.adapters.redis_bus import RedisBus

        return RedisBus(
            settings.redis_url,
            prefix=settings.redis_prefix,
            node_id=node_id,
            heartbeat_interval=settings.heartbeat_interval,
            node_timeout=settings.node_timeout,
            drop_rate=settings.bus_drop_rate,
        )
    return LocalBus(node_id=node_id)
