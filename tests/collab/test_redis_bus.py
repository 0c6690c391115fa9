"""Redis-only behaviour of the bus: its control-stream housekeeping."""

from __future__ import annotations

import asyncio
import contextlib
import os

import pytest
from redis.asyncio import Redis

from collab.adapters import redis_bus
from collab.adapters.redis_bus import RedisBus

from .buses import REDIS_URL, RedisCluster, redis_available
from .peers import eventually

pytestmark = pytest.mark.anyio


async def test_a_dead_nodes_control_group_is_forgotten(monkeypatch: pytest.MonkeyPatch) -> None:
    why = redis_available()
    if why is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"Redis is required under CI: {why}")
        pytest.skip(why)
    cluster = RedisCluster()
    key = f"{cluster.prefix}:control"
    redis = Redis.from_url(REDIS_URL)
    try:
        # A node killed with -9 left its group behind, its consumer idle ever since.
        await redis.xgroup_create(key, "node:dead", id="$", mkstream=True)
        await redis.xgroup_createconsumer(key, "node:dead", "dead")
        monkeypatch.setattr(redis_bus, "_DEAD_GROUP_IDLE_MS", -1)
        bus: RedisBus = cluster.node()
        task = asyncio.create_task(bus.run())
        try:
            await eventually(lambda: bus.connected, deadline=5)

            async def groups() -> set[str]:
                return {g["name"].decode() for g in await redis.xinfo_groups(key)}

            assert await groups() == {f"node:{bus.node_id}"}
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    finally:
        await redis.aclose()
        await cluster.aclose()
