"""Fixtures: a real ``inkroom serve`` process and Node processes holding Yjs clients.

Node and the packages of ``package.json`` are required. Without them the tests skip,
except under ``CI=true``, where a missing toolchain must fail loudly rather than pass
as "skipped".
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack
from pathlib import Path
from typing import NoReturn

import pytest

from .inkroom_process import CLASSROOM, InkroomServer, StartServer
from .node_client import INTEROP_DIR, NodeDriver, OpenDriver


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"interop tests cannot run under CI: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def node_executable() -> str:
    node = shutil.which("node")
    if node is None:
        _unavailable("`node` is not on PATH (the interop tests need Node 20+)")
    if not (INTEROP_DIR / "node_modules" / "y-websocket" / "package.json").is_file():
        _unavailable("Node packages missing: run `npm ci` in tests/interop")
    return node


@pytest.fixture
async def start_server(tmp_path: Path) -> AsyncIterator[StartServer]:
    """Starts private servers (``await start_server(env={...})``); stops them all after.

    For tests that restart a server or need other settings; the rest share ``inkroom``.
    """
    async with AsyncExitStack() as stack:
        servers: list[InkroomServer] = []

        async def start(env: Mapping[str, str] | None = None) -> InkroomServer:
            index = len(servers)
            server = InkroomServer(
                tmp_path / f"data-{index}", tmp_path / f"server-{index}.log", env=env
            )
            stack.push_async_callback(server.aclose)
            servers.append(server)
            await server.start()
            return server

        try:
            yield start
        finally:
            # Shown by pytest only when the test fails.
            for server in servers:
                print(f"--- {server.log_path.name} ---\n{server.log_tail()}")


@pytest.fixture(scope="module")
async def shared_inkroom(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[InkroomServer]:
    """One server per test module: starting Python is most of a short test's time."""
    base = tmp_path_factory.mktemp("inkroom")
    server = InkroomServer(base / "data", base / "server.log")
    try:
        await server.start()
        yield server
    finally:
        await server.aclose()


@pytest.fixture
async def inkroom(shared_inkroom: InkroomServer) -> AsyncIterator[InkroomServer]:
    """The module's running server. Tests share it, each on documents of its own."""
    if not shared_inkroom.running:
        pytest.fail(f"the shared server has exited:\n{shared_inkroom.log_tail()}")
    yield shared_inkroom
    # Shown by pytest only when the test fails.
    print(f"--- {shared_inkroom.log_path.name} ---\n{shared_inkroom.log_tail()}")


@pytest.fixture
def board() -> str:
    """A document no other test uses, in the classroom of ``server.token(CLASSROOM)``."""
    return f"{CLASSROOM}/board-{secrets.token_hex(4)}"


@pytest.fixture
async def node(node_executable: str) -> AsyncIterator[OpenDriver]:
    """Opens Node driver processes on demand (``await node("label")``); closes them all after."""
    async with AsyncExitStack() as stack:
        drivers: list[NodeDriver] = []

        async def open_driver(label: str = "node") -> NodeDriver:
            driver = await stack.enter_async_context(
                NodeDriver.open(node=node_executable, label=label)
            )
            drivers.append(driver)
            return driver

        try:
            yield open_driver
        finally:
            for driver in drivers:
                print(f"--- driver {driver.label} (pid {driver.pid}) ---\n{driver.log_tail()}")
