"""A reader that stops reading on a live server: closed with 1013, nobody else slowed."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import websockets
from pycrdt import Array

from server.auth import Role, issue

from .live import live_server, settings_for
from .wspeer import WsPeer

pytestmark = pytest.mark.anyio
SECRET = "slow-secret-" + "0123456789abcdef" * 4
UPDATES = 1000
BLOB = 32 * 1024  # large frames fill the socket buffers quickly


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    with live_server(settings_for(tmp_path, SECRET, outbox_messages=32)) as url:
        yield url


def url(server: str, user: str) -> str:
    return (
        f"{server}/ws/c1/board?token={issue(SECRET, classroom='c1', role=Role.TUTOR, user_id=user)}"
    )


def has(peer: WsPeer, n: int) -> Callable[[], bool]:
    return lambda: len(peer.doc.get("a", type=Array)) == n


async def drained_close_code(ws: websockets.ClientConnection) -> int | None:
    """Reads until the server closes; returns the close code it sent."""
    try:
        async with asyncio.timeout(20):
            while True:
                await ws.recv()
    except websockets.ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd is not None else None


async def test_a_reader_that_stops_reading_is_closed_and_the_room_goes_on(server: str) -> None:
    # websockets stops reading the socket once 16 frames wait unread: TCP backpressure
    # reaches the server, its transport pauses, the outbox fills.
    stalled = await websockets.connect(url(server, "stalled"), max_size=None, max_queue=16)
    try:
        async with WsPeer(url(server, "writer")) as writer, WsPeer(url(server, "reader")) as reader:
            for i in range(1, UPDATES + 1):
                await writer.edit(lambda d: d.get("a", type=Array).append(bytes(BLOB)))
                if i % 10 == 0:  # a healthy reader keeps up; the stalled one falls behind
                    await reader.until(has(reader, i), 10)
        # Now drain what the stalled client was sent: the stream ends with a 1013 close.
        assert await drained_close_code(stalled) == 1013
    finally:
        await stalled.close()
