"""One call per classroom across nodes: the node that opens it holds a lease in Redis; a
join that reaches another node gets a ``redirect`` naming the holder, then close 4307;
when the call closes the lease goes, and the next join opens it wherever it lands."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import websockets

from server.auth import Role, issue

from .live import live_server, settings_for

pytestmark = pytest.mark.anyio
SECRET = "placement-secret-" + "0123456789abcdef" * 4
REDIS = "redis://127.0.0.1:6379/0"
URLS = {"node-a": "http://node-a.test", "node-b": "http://node-b.test"}


@pytest.fixture
def nodes(tmp_path: Path) -> Iterator[tuple[dict[str, str], str]]:
    """Two live nodes sharing a Redis prefix: {node id: ws base URL}, and the prefix."""
    client = redis.Redis.from_url(REDIS)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.skip(f"Redis unavailable at {REDIS}: {exc}")
    prefix = f"inktest-{secrets.token_hex(4)}"

    def settings(node: str):  # type: ignore[no-untyped-def]
        return settings_for(
            tmp_path / node,
            SECRET,
            redis_url=REDIS,
            redis_prefix=prefix,
            node_id=node,
            sfu_node_url=URLS[node],
        )

    try:
        with live_server(settings("node-a")) as a, live_server(settings("node-b")) as b:
            yield {"node-a": a, "node-b": b}, prefix
    finally:
        keys = list(client.scan_iter(match=f"{prefix}:*"))
        if keys:
            client.delete(*keys)
        client.close()


def url(base: str, role: Role, user: str) -> str:
    token = issue(SECRET, classroom="c1", role=role, user_id=user)
    return f"{base}/sfu/c1?token={token}"


async def first_reply(ws: websockets.ClientConnection) -> dict[str, object]:
    await ws.send('{"type":"join"}')
    reply: dict[str, object] = json.loads(await asyncio.wait_for(ws.recv(), 10))
    return reply


async def redirected(base: str, user: str) -> tuple[dict[str, object], int | None]:
    async with websockets.connect(url(base, Role.STUDENT, user)) as ws:
        reply = await first_reply(ws)
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 10)
    return reply, closed.value.rcvd.code if closed.value.rcvd else None


async def test_a_join_at_another_node_is_redirected_to_the_call(
    nodes: tuple[dict[str, str], str],
) -> None:
    base, prefix = nodes
    key = f"{prefix}:call:c1"
    async with websockets.connect(url(base["node-a"], Role.TUTOR, "tutor")) as tutor:
        assert (await first_reply(tutor))["type"] == "joined"
        assert json.loads(redis.Redis.from_url(REDIS).get(key) or b"null") == [
            "node-a",
            URLS["node-a"],
        ]

        reply, code = await redirected(base["node-b"], "ann")
        assert reply == {"type": "redirect", "node": "node-a", "url": URLS["node-a"]}
        assert code == 4307

        # She follows it: same path and token, on node A, and finds the tutor there.
        async with websockets.connect(url(base["node-a"], Role.STUDENT, "ann")) as ann:
            joined = await first_reply(ann)
            assert joined["type"] == "joined"
            users = [p["userId"] for p in joined["participants"]]  # type: ignore[attr-defined]
            assert users == ["tutor", "ann"]

    # Everyone left node A: the call closed and its lease went with it.
    r = redis.Redis.from_url(REDIS)
    deadline = asyncio.get_running_loop().time() + 10
    while r.exists(key):
        assert asyncio.get_running_loop().time() < deadline, "the lease was not released"
        await asyncio.sleep(0.05)
    async with websockets.connect(url(base["node-b"], Role.TUTOR, "tutor")) as tutor:
        assert (await first_reply(tutor))["type"] == "joined"
        reply, code = await redirected(base["node-a"], "bob")
        assert (reply["node"], code) == ("node-b", 4307)
