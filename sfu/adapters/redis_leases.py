"""Call leases in Redis: one key per call, ``{prefix}:call:{classroom}``, holding the
hosting node's id and URL, with a TTL; renewed and released only by their holder (a
compare-and-set script, so a node whose lease expired and was taken over never extends
or deletes the new holder's)."""

from __future__ import annotations

import json

import redis.asyncio as redis
from redis.exceptions import RedisError

from ..placement import Host

_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""


def _value(host: Host) -> str:
    return json.dumps([host.node, host.url], separators=(",", ":"))


class RedisLeases:
    """:class:`sfu.placement.Leases` over Redis. Redis errors become ``ConnectionError``."""

    def __init__(self, url: str, *, prefix: str = "inkroom") -> None:
        self._redis = redis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)
        self._prefix = prefix

    def _key(self, call: str) -> str:
        return f"{self._prefix}:call:{call}"

    async def acquire(self, call: str, me: Host, ttl: float) -> Host:
        key, mine = self._key(call), _value(me)
        try:
            for _ in range(3):  # the holder may release between SET NX and GET
                if await self._redis.set(key, mine, nx=True, px=int(ttl * 1000)):
                    return me
                current = await self._redis.get(key)
                if current is None:
                    continue
                node, url = json.loads(current)
                holder = Host(str(node), str(url))
                if holder.node == me.node:  # ours already (this node restarted quickly)
                    await self._redis.set(key, mine, px=int(ttl * 1000))
                    return me
                return holder
        except RedisError as exc:
            raise ConnectionError(f"call leases unavailable: {exc}") from exc
        return me

    async def renew(self, call: str, me: Host, ttl: float) -> bool:
        try:
            done = await self._redis.eval(_RENEW, 1, self._key(call), _value(me), int(ttl * 1000))
        except RedisError as exc:
            raise ConnectionError(f"call leases unavailable: {exc}") from exc
        return bool(done)

    async def release(self, call: str, me: Host) -> None:
        try:
            await self._redis.eval(_RELEASE, 1, self._key(call), _value(me))
        except RedisError as exc:
            raise ConnectionError(f"call leases unavailable: {exc}") from exc

    async def aclose(self) -> None:
        await self._redis.aclose()
