"""Several ``inkroom serve`` nodes on the real Redis and PostgreSQL, driven by stock Yjs
clients: convergence, presence, catch-up, lost bus messages, lost Redis links, kill -9 and
SIGTERM drain. Every node shares one throwaway PostgreSQL schema, one Redis key prefix
and one secret; clients that must move between nodes connect through a load balancer.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
import redis
from anyio.abc import Process
from sqlalchemy import create_engine, text

from server.auth import Role

from .balancer import Balancer
from .inkroom_process import CLASSROOM, InkroomServer, free_port
from .node_client import NodeDriver, OpenDriver, Snapshot, YClient
from .test_yjs_interop import covering

pytestmark = [pytest.mark.interop, pytest.mark.integration, pytest.mark.anyio]

PG_URL = os.environ.get("INKROOM_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("INKROOM_TEST_REDIS", "redis://127.0.0.1:6379/0")
# Saves far in the future: the node keeps its clients' changes unsaved for the whole test.
UNSAVED = {"INKROOM_SAVE_DEBOUNCE": "60", "INKROOM_SAVE_MAX_DELAY": "120"}


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"multi-node tests need PostgreSQL and Redis under CI: {reason}")
    pytest.skip(reason)


@pytest.fixture
def database_url() -> Iterator[str]:
    schema = f"inkroom_mn_{secrets.token_hex(4)}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except Exception as exc:
        admin.dispose()
        _unavailable(f"PostgreSQL unavailable at {PG_URL}: {exc}")
    try:
        yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def stored_updates(database_url: str, document: str) -> int:
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            count = conn.execute(
                text("SELECT count(*) FROM collab_update WHERE document = :d"), {"d": document}
            ).scalar()
        return int(count or 0)
    finally:
        engine.dispose()


class Nodes:
    """Starts nodes sharing a database, a Redis prefix and a secret; stops them all."""

    def __init__(self, tmp_path: Path, database_url: str, redis_url: str) -> None:
        self.tmp_path = tmp_path
        self.database_url = database_url
        self.redis_url = redis_url
        self.prefix = f"inkroom-mn-{secrets.token_hex(4)}"
        self.secret = secrets.token_urlsafe(48)
        self.servers: list[InkroomServer] = []

    def make(self, **env: str) -> InkroomServer:
        index = len(self.servers)
        server = InkroomServer(
            self.tmp_path / f"node-{index}",
            self.tmp_path / f"node-{index}.log",
            env={
                "INKROOM_SECRET": self.secret,
                "INKROOM_DATABASE_URL": self.database_url,
                "INKROOM_REDIS_URL": self.redis_url,
                "INKROOM_REDIS_PREFIX": self.prefix,
                "INKROOM_NODE_ID": f"node-{index}-{secrets.token_hex(2)}",
                "INKROOM_HEARTBEAT_INTERVAL": "0.3",
                "INKROOM_NODE_TIMEOUT": "1.5",
                "INKROOM_ANTI_ENTROPY_INTERVAL": "0.5",
                **env,
            },
        )
        server.secret = self.secret
        self.servers.append(server)
        return server

    async def start(self, *envs: dict[str, str]) -> list[InkroomServer]:
        """Starts one node per ``env``, all at once (they migrate the fresh schema together)."""
        made = [self.make(**env) for env in envs]
        async with anyio.create_task_group() as tg:
            for server in made:
                tg.start_soon(server.start)
        return made

    def token(self, role: Role = Role.TUTOR) -> str:
        return self.servers[0].token(CLASSROOM, role)

    async def aclose(self) -> None:
        for server in self.servers:
            await server.aclose()
        client = redis.Redis.from_url(self.redis_url)
        try:
            keys = list(client.scan_iter(match=f"{self.prefix}:*"))
            if keys:
                client.delete(*keys)
        except redis.RedisError:
            pass  # a private Redis the test already stopped
        finally:
            client.close()


@pytest.fixture
async def nodes(tmp_path: Path, database_url: str) -> AsyncIterator[Nodes]:
    try:
        redis.Redis.from_url(REDIS_URL).ping()
    except redis.RedisError as exc:
        _unavailable(f"Redis unavailable at {REDIS_URL}: {exc}")
    made = Nodes(tmp_path, database_url, REDIS_URL)
    try:
        yield made
    finally:
        await made.aclose()
        for server in made.servers:
            print(f"--- {server.log_path.name} ---\n{server.log_tail(40)}")


async def join(driver: NodeDriver, name: str, url: str, board: str, nodes: Nodes) -> YClient:
    client = await driver.client(
        name, server_url=url, room=board, token=nodes.token(), max_backoff_ms=300
    )
    await client.wait(synced=True, deadline=10)
    return client


def content(items: list[Any]) -> dict[str, Any]:
    return {"map": {}, "array": items, "text": ""}


def ready_status(server: InkroomServer) -> str:
    try:
        with urllib.request.urlopen(f"{server.http_url}/readyz", timeout=2) as response:
            return str(json.load(response)["status"])
    except OSError:
        return "unreachable"


async def test_nodes_converge_share_presence_and_serve_another_nodes_unsaved_changes(
    nodes: Nodes, node: OpenDriver, board: str
) -> None:
    # Two nodes start together on an empty schema: the migration lock serialises them.
    a, b = await nodes.start(UNSAVED, {})
    driver = await node()
    alice = await join(driver, "alice", a.ws_url, board, nodes)
    await alice.set_awareness({"user": "alice"})
    for i in range(3):
        await alice.array_push(f"a{i}")
    await alice.wait(content=content(["a0", "a1", "a2"]))
    assert stored_updates(nodes.database_url, board) == 0, "node A saved nothing yet"
    # Bob joins the other node, whose store does not have Alice's changes.
    bob = await join(driver, "bob", b.ws_url, board, nodes)
    await bob.wait(content=content(["a0", "a1", "a2"]), deadline=5)
    await bob.set_awareness({"user": "bob"})
    await bob.wait(present={alice.client_id: {"user": "alice"}}, deadline=5)
    await alice.wait(present={bob.client_id: {"user": "bob"}}, deadline=5)
    await bob.array_push("b0")
    expected = content(["a0", "a1", "a2", "b0"])
    await alice.wait(content=expected, deadline=5)
    # Bob's connection ends (no goodbye of his own): his cursor leaves node A's clients.
    await bob.destroy()
    await alice.wait(absent=[bob.client_id], deadline=5)


async def test_dropped_bus_messages_reconverge_within_5_seconds(
    nodes: Nodes, node: OpenDriver, board: str
) -> None:
    lossy = {"INKROOM_BUS_DROP_RATE": "0.5"}
    a, b = await nodes.start(lossy, lossy)
    driver = await node()
    alice = await join(driver, "alice", a.ws_url, board, nodes)
    bob = await join(driver, "bob", b.ws_url, board, nodes)
    for i in range(20):
        await alice.array_push(f"a{i}")
        await bob.map_set(f"b{i}", i)
    alice_view = await alice.wait(
        content={
            "map": {f"b{i}": i for i in range(20)},
            "array": [f"a{i}" for i in range(20)],
            "text": "",
        },
        deadline=5,
    )
    bob_view = await bob.wait(content=alice_view.content, deadline=5)
    assert bob_view.state_vector == alice_view.state_vector or bob_view.clocks == alice_view.clocks


def _kill_links(redis_url: str, prefix: str) -> int:
    client = redis.Redis.from_url(redis_url)
    try:
        killed = 0
        for info in client.client_list():
            if str(info.get("name", "")).startswith(prefix + ":"):
                killed += int(client.client_kill_filter(_id=info["id"]))
        return killed
    finally:
        client.close()


class PrivateRedis:
    """A ``redis-server`` of this test's own, which it may stop and start again."""

    def __init__(self, binary: str, data_dir: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._command = [binary, "--port", str(self.port), "--bind", "127.0.0.1"]
        self._command += ["--save", "", "--appendonly", "no", "--dir", str(data_dir)]
        self._process: Process | None = None

    async def start(self) -> None:
        self._process = await anyio.open_process(
            self._command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        await _until(lambda: _pings(self.url))

    async def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            with anyio.CancelScope(shield=True):
                process.terminate()
                await process.wait()
                await process.aclose()


async def test_killed_redis_links_and_a_restarted_redis_reconverge(
    nodes: Nodes, node: OpenDriver, board: str, tmp_path: Path
) -> None:
    binary = shutil.which("redis-server")
    if binary is None:
        _unavailable("redis-server is not installed (a private Redis is restarted here)")
    assert binary is not None
    private = PrivateRedis(binary, tmp_path)
    await private.start()
    try:
        nodes.redis_url = private.url
        a, b = await nodes.start({}, {})
        driver = await node()
        alice = await join(driver, "alice", a.ws_url, board, nodes)
        bob = await join(driver, "bob", b.ws_url, board, nodes)
        await alice.array_push("before")
        await bob.wait(content=content(["before"]), deadline=5)
        # 1. Every link of both nodes killed mid-session; edits right after.
        assert _kill_links(nodes.redis_url, nodes.prefix) >= 4
        await alice.array_push("after-kill-a")
        await bob.array_push("after-kill-b")
        view = await converged(alice, bob)
        # Concurrent pushes: either order is right, as long as both clients agree.
        assert sorted(view.content["array"]) == ["after-kill-a", "after-kill-b", "before"]
        # 2. Redis itself goes away: both nodes keep serving and say they are degraded.
        await private.stop()
        await _until(lambda: ready_status(a) == "degraded" and ready_status(b) == "degraded")
        await alice.array_push("while-down-a")
        await bob.array_push("while-down-b")
        await alice.wait(content=content([*view.content["array"], "while-down-a"]), deadline=5)
        await private.start()
        await _until(lambda: ready_status(a) == "ready" and ready_status(b) == "ready")
        final = await converged(alice, bob)
        assert sorted(final.content["array"][-2:]) == ["while-down-a", "while-down-b"]
    finally:
        for server in nodes.servers:
            await server.stop()
        await private.stop()


async def converged(a: YClient, b: YClient, deadline: float = 8.0) -> Snapshot:
    """Waits until each client has everything either has; returns one, checked equal."""
    want = covering(await a.read(), await b.read())
    view = await a.wait(clocks=want, deadline=deadline)
    other = await b.wait(clocks=want, deadline=deadline)
    assert view.content == other.content
    return view


def _nodes_gone(server: InkroomServer) -> float:
    with urllib.request.urlopen(f"{server.http_url}/metrics", timeout=2) as response:
        for line in response.read().decode().splitlines():
            if line.startswith("inkroom_bus_nodes_gone_total{"):
                return float(line.rsplit(" ", 1)[1])
    return 0.0


def _pings(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.5).ping())
    except redis.RedisError:
        return False


async def _until(condition: Any, deadline: float = 10.0) -> None:
    """Polls a condition that has no event across processes (readiness, a port)."""
    started = time.monotonic()
    while not await anyio.to_thread.run_sync(condition):
        if time.monotonic() - started > deadline:
            raise TimeoutError("condition not met in time")
        await anyio.sleep(0.1)


async def test_kill_9_of_a_node_loses_no_acknowledged_update(
    nodes: Nodes, node: OpenDriver, board: str
) -> None:
    a, b = await nodes.start(UNSAVED, {})
    driver = await node()
    async with Balancer([a.port, b.port]) as balancer:
        alice = await join(driver, "alice", balancer.ws_url, board, nodes)
        bob = await join(driver, "bob", b.ws_url, board, nodes)
        for i in range(5):
            await alice.array_push(f"a{i}")
        acknowledged = content([f"a{i}" for i in range(5)])
        await bob.wait(content=acknowledged, deadline=5)  # seen elsewhere: acknowledged
        assert stored_updates(nodes.database_url, board) == 0, "node A saved nothing"
        await a.kill()
        await alice.array_push("after-kill")  # unsent: arrives through the resync
        await alice.wait(closes=1, deadline=5)
        expected = content([*acknowledged["array"], "after-kill"])
        await alice.wait(content=expected, synced=True, deadline=10)
        await bob.wait(content=expected, deadline=10)
        # Durable: B keeps what A never saved once it sees A gone; a fresh node has it all.
        await _until(lambda: _nodes_gone(b) >= 1)
        await b.stop()
        (c,) = await nodes.start({})
        carol = await join(driver, "carol", c.ws_url, board, nodes)
        await carol.wait(content=expected, deadline=5)


async def test_sigterm_drains_clients_to_another_node_with_1012(
    nodes: Nodes, node: OpenDriver, board: str
) -> None:
    a, b = await nodes.start({}, {})
    driver = await node()
    async with Balancer([a.port, b.port]) as balancer:
        alice = await join(driver, "alice", balancer.ws_url, board, nodes)
        bob = await join(driver, "bob", b.ws_url, board, nodes)
        await alice.array_push("before")
        await bob.wait(content=content(["before"]), deadline=5)
        started = time.monotonic()
        assert await a.stop(), f"node A did not exit on SIGTERM:\n{a.log_tail()}"
        drained_in = time.monotonic() - started
        closes = (await alice.wait(closes=1, deadline=5)).closes
        assert closes[0].code == 1012
        await alice.array_push("after")
        expected = content(["before", "after"])
        await bob.wait(content=expected, deadline=10)
        await alice.wait(content=expected, synced=True, deadline=10)
        assert drained_in < 10, f"drain took {drained_in:.1f} s"
