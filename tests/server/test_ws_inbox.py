"""The connection's inbox: messages kept in order, the socket read on until INBOX_BYTES
wait unread (uvicorn paused after every message), then paused until the app catches up.
A real uvicorn server with Inkroom's protocol and a real websockets client."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import uvicorn
from websockets.asyncio.client import connect

from server.ws_protocol import INBOX_BYTES, Flag, Inbox, InkroomWebSocketProtocol

from .live import free_port

pytestmark = pytest.mark.anyio


async def _until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 10.0
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.005)


Handler = Callable[[InkroomWebSocketProtocol, Any], Awaitable[None]]


@contextlib.asynccontextmanager
async def _serving(handler: Handler) -> AsyncIterator[int]:
    """A uvicorn server with Inkroom's WebSocket protocol on a free port (yielded): each
    socket is accepted, then ``handler(protocol, receive)`` runs it."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        await handler(scope["extensions"]["inkroom.send_nowait"].__self__, receive)

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, ws=InkroomWebSocketProtocol, log_config=None
        )
    )
    serving = asyncio.create_task(server.serve())
    try:
        await _until(lambda: server.started, "the server")
        yield port
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, 15)


async def test_the_socket_is_read_on_below_the_bound_paused_above_it_and_nothing_is_lost() -> None:
    opened: asyncio.Queue[InkroomWebSocketProtocol] = asyncio.Queue()
    read_now = asyncio.Event()
    received: list[bytes] = []
    done = asyncio.Event()

    async def stalled(proto: InkroomWebSocketProtocol, receive: Any) -> None:
        opened.put_nowait(proto)
        await read_now.wait()  # a stalled application: nothing read until the test says
        while len(received) < 80:
            message = await receive()
            received.append(message["bytes"])
        done.set()
        await receive()

    async with _serving(stalled) as port:
        sent = [bytes([i]) * 2048 for i in range(80)]  # 160 KiB in all
        async with connect(f"ws://127.0.0.1:{port}/", compression=None) as ws:
            proto = await asyncio.wait_for(opened.get(), 10)
            inbox = proto.queue
            assert isinstance(inbox, Inbox)
            below = INBOX_BYTES // 2048  # 32 messages: exactly the bound, not past it
            for data in sent[:below]:
                await ws.send(data)
            await _until(lambda: inbox.bytes == below * 2048, "the first messages")
            assert not proto.read_paused
            assert proto.transport.is_reading()
            for data in sent[below:]:
                await ws.send(data)
            await _until(lambda: proto.read_paused, "the pause past the bound")
            assert not proto.transport.is_reading()
            read_now.set()
            await asyncio.wait_for(done.wait(), 10)
            assert received == sent
            assert not proto.read_paused
            assert proto.transport.is_reading()
            assert inbox.bytes == 0
            assert inbox.empty()


async def test_a_cancelled_reader_loses_no_message() -> None:
    inbox = Inbox()
    reader = asyncio.create_task(inbox.get())
    await asyncio.sleep(0)  # the reader waits
    inbox.put_nowait({"type": "websocket.receive", "bytes": b"one"})
    reader.cancel()  # woken, then cancelled before it ran
    with pytest.raises(asyncio.CancelledError):
        await reader
    assert (await inbox.get())["bytes"] == b"one"
    assert inbox.empty()
    assert inbox.bytes == 0


def _masked_binary(payload: bytes) -> bytes:
    mask = b"\x01\x02\x03\x04"
    assert len(payload) < 126
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes((0x82, 0x80 | len(payload))) + mask + body


_UPGRADE = (
    b"GET /x HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


# After the request: nothing (browsers wait for the 101), or a whole frame riding with it
# (the swap then happens at the boundary after it). A partial frame before the 101 is not
# served by uvicorn's own protocol either (RFC 6455 4.1: the client waits for the answer).
@pytest.mark.parametrize("split", [None, 0])
async def test_the_request_is_not_kept_for_the_connections_life_and_frames_still_parse(
    split: int | None,
) -> None:
    opened: asyncio.Queue[InkroomWebSocketProtocol] = asyncio.Queue()
    echoed: asyncio.Queue[bytes] = asyncio.Queue()

    async def echo(proto: InkroomWebSocketProtocol, receive: Any) -> None:
        opened.put_nowait(proto)
        while True:
            message = await receive()
            if message["type"] != "websocket.receive":
                return
            echoed.put_nowait(message["bytes"])

    async with _serving(echo) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        frame = _masked_binary(b"first message")
        if split is None:
            writer.write(_UPGRADE)
        else:  # a client that does not wait for the 101: frame bytes ride with the request
            writer.write(_UPGRADE + frame[:split])
        await writer.drain()
        proto = await asyncio.wait_for(opened.get(), 10)
        assert b"101" in await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        if split is None:
            # Swapped: the parser's generator no longer holds the request.
            parser: Any = proto.conn.parser
            assert "request" not in parser.gi_frame.f_locals
            writer.write(frame)
        else:
            writer.write(frame[split:])
        writer.write(_masked_binary(b"second"))
        await writer.drain()
        assert await asyncio.wait_for(echoed.get(), 10) == b"first message"
        assert await asyncio.wait_for(echoed.get(), 10) == b"second"
        writer.close()


async def test_the_writable_flag_releases_every_waiter_on_set_and_forgets_cancelled_ones() -> None:
    flag = Flag()
    assert flag.is_set()
    assert await flag.wait()  # set: no wait at all
    flag.clear()
    waiters = [asyncio.create_task(flag.wait()) for _ in range(3)]
    gone = asyncio.create_task(flag.wait())
    await asyncio.sleep(0)
    gone.cancel()
    with pytest.raises(asyncio.CancelledError):
        await gone
    assert not any(w.done() for w in waiters)
    flag.set()
    assert await asyncio.wait_for(asyncio.gather(*waiters), 5) == [True, True, True]
    assert flag.is_set()
