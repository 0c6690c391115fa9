"""The connection's inbox: messages kept in order, the socket read on until INBOX_BYTES
wait unread (uvicorn paused after every message), then paused until the app catches up.
A real uvicorn server with Inkroom's protocol and a real websockets client."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest
import uvicorn
from websockets.asyncio.client import connect

from server.ws_protocol import INBOX_BYTES, Inbox, InkroomWebSocketProtocol

from .live import free_port

pytestmark = pytest.mark.anyio


async def _until(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.005)


async def test_the_socket_is_read_on_below_the_bound_paused_above_it_and_nothing_is_lost() -> None:
    opened: asyncio.Queue[InkroomWebSocketProtocol] = asyncio.Queue()
    read_now = asyncio.Event()
    received: list[bytes] = []
    done = asyncio.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        opened.put_nowait(scope["extensions"]["inkroom.send_nowait"].__self__)
        await read_now.wait()  # a stalled application: nothing read until the test says
        while len(received) < 80:
            message = await receive()
            received.append(message["bytes"])
        done.set()
        await receive()

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, ws=InkroomWebSocketProtocol, log_config=None
        )
    )
    serving = asyncio.create_task(server.serve())
    try:
        await _until(lambda: server.started, "the server")
        sent = [bytes([i]) * 2048 for i in range(80)]  # 160 KiB in all
        async with connect(f"ws://127.0.0.1:{port}/", compression=None) as ws:
            proto = await asyncio.wait_for(opened.get(), 10)
            inbox = proto.queue
            assert isinstance(inbox, Inbox)
            below = INBOX_BYTES // 2048  # 32 messages: exactly the bound, not past it
            for data in sent[:below]:
                await ws.send(data)
            await _until(lambda: inbox.bytes == below * 2048, "the first messages")
            assert not proto.read_paused and proto.transport.is_reading()
            for data in sent[below:]:
                await ws.send(data)
            await _until(lambda: proto.read_paused, "the pause past the bound")
            assert not proto.transport.is_reading()
            read_now.set()
            await asyncio.wait_for(done.wait(), 10)
            assert received == sent
            assert not proto.read_paused and proto.transport.is_reading()
            assert inbox.bytes == 0 and inbox.empty()
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, 15)


async def test_a_cancelled_reader_loses_no_message() -> None:
    inbox = Inbox()
    reader = asyncio.create_task(inbox.get())
    await asyncio.sleep(0)  # the reader waits
    inbox.put_nowait({"type": "websocket.receive", "bytes": b"one"})
    reader.cancel()  # woken, then cancelled before it ran
    with pytest.raises(asyncio.CancelledError):
        await reader
    assert (await inbox.get())["bytes"] == b"one"
    assert inbox.empty() and inbox.bytes == 0
