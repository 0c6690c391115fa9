"""kill -9 right after "saved" loses nothing, even with every client gone."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import websockets
from pycrdt import Doc, Map

from collab.protocol import Saved, SavedRequest, SyncStep1, SyncStep2, decode
from server.auth import Role
from tests.interop.inkroom_process import InkroomServer
from tests.replica import Replica

pytestmark = pytest.mark.anyio


async def sync(ws: websockets.ClientConnection, replica: Replica) -> None:
    """Reads until synced, answering the server's SyncStep1 like the stock client."""
    await ws.send(replica.hello())
    async with asyncio.timeout(15):
        while not replica.synced.is_set():
            message = decode(await ws.recv())  # type: ignore[arg-type]
            reply = replica.handle(message)
            if reply is not None:
                await ws.send(reply)


async def until_saved(ws: websockets.ClientConnection, replica: Replica, marker: int) -> None:
    async with asyncio.timeout(15):
        while True:
            message = decode(await ws.recv())  # type: ignore[arg-type]
            if isinstance(message, Saved) and message.marker == marker:
                return
            replica.handle(message)


async def keys_after_restart(server: InkroomServer, url: str) -> set[str]:
    await server.start()
    replica = Replica()
    async with websockets.connect(url, max_size=None) as ws:
        await sync(ws, replica)
    return set(replica.doc.get("shapes", type=Map).keys())


async def test_kill_9_right_after_saved_loses_nothing(tmp_path: Path) -> None:
    server = InkroomServer(tmp_path / "data", tmp_path / "server.log")
    try:
        await server.start()
        url = f"{server.ws_url}/c1/board?token={server.token('c1', Role.TUTOR)}"
        expected: set[str] = set()
        for round_no in range(3):
            replica = Replica()
            async with websockets.connect(url, max_size=None) as ws:
                await sync(ws, replica)
                key = f"stroke-{round_no}"

                def draw(d: Doc[Any], k: str = key, n: int = round_no) -> None:
                    d.get("shapes", type=Map)[k] = n

                for frame in replica.edit(draw):
                    await ws.send(frame)
                await ws.send(bytes(SavedRequest(round_no + 1)))
                await until_saved(ws, replica, round_no + 1)
                # Saved: the node dies at once, the client with it; no flush, no goodbye.
                await server.kill()
            expected.add(key)
            assert await keys_after_restart(server, url) == expected, server.log_tail()
    finally:
        await server.aclose()


async def test_a_held_sync_means_saved_for_a_stock_client(tmp_path: Path) -> None:
    server = InkroomServer(
        tmp_path / "data", tmp_path / "server.log", env={"INKROOM_HOLD_SYNC_UNTIL_SAVED": "true"}
    )
    try:
        await server.start()
        url = f"{server.ws_url}/c1/board?token={server.token('c1', Role.TUTOR)}"
        replica = Replica()
        doc: Doc[Any] = replica.doc
        doc.get("shapes", type=Map)["offline"] = 1  # drawn before the connection came back
        async with websockets.connect(url, max_size=None) as ws:
            await ws.send(replica.hello())
            async with asyncio.timeout(15):
                while True:
                    message = decode(await ws.recv())  # type: ignore[arg-type]
                    if isinstance(message, SyncStep1):
                        await ws.send(bytes(SyncStep2(doc.get_update(message.state_vector))))
                    elif isinstance(message, SyncStep2):
                        break  # synced, as the stock client counts it
            await server.kill()
        assert await keys_after_restart(server, url) == {"offline"}, server.log_tail()
    finally:
        await server.aclose()
