"""A call participant over a real WebSocket to a live server (aiortc inside)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import websockets
from aiortc import RTCIceServer

from sfu.client import CallClient
from sfu.hooks import use_loopback_only

use_loopback_only()  # the live server's peers and these gather 127.0.0.1 only


@contextlib.asynccontextmanager
async def call_peer(
    url: str, *, own_ice: bool = False, relay_only: bool = False
) -> AsyncIterator[CallClient]:
    """Joined; with ``own_ice`` false it ignores the server's STUN/TURN list (the tests'
    servers name addresses where nothing listens, and gathering would wait for them)."""
    async with websockets.connect(url) as ws:

        async def send(text: str) -> None:
            await ws.send(text)

        async def pump(client: CallClient) -> None:
            with contextlib.suppress(websockets.ConnectionClosed):
                async for frame in ws:
                    assert isinstance(frame, str)
                    await client.deliver(frame)

        ice: list[RTCIceServer] | None = None if own_ice else []
        async with (
            CallClient(send, ice_servers=ice, relay_only=relay_only) as client,
            asyncio.TaskGroup() as tg,
        ):
            task = tg.create_task(pump(client))
            try:
                await client.join()
                yield client
            finally:
                task.cancel()
