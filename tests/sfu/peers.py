"""In-process participants: a CallClient wired straight to an Sfu session (no WebSocket)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from aiortc import MediaStreamTrack

from sfu.client import CallClient, Received
from sfu.policy import Member, Role
from sfu.service import Session, Sfu
from sfu.signaling import encode


@asynccontextmanager
async def joined(sfu: Sfu, classroom: str, user: str, role: Role) -> AsyncIterator[CallClient]:
    """A participant that has joined; it leaves and closes its connections on exit."""
    inbox: asyncio.Queue[str] = asyncio.Queue()
    holder: list[Session] = []

    async def send(text: str) -> None:
        await holder[0].receive(text)

    async def pump(client: CallClient) -> None:
        while True:
            await client.deliver(await inbox.get())

    async with CallClient(send) as client, asyncio.TaskGroup() as tg:
        joined_future = client.expect("joined")
        session = await sfu.join(
            classroom, Member(user, Role(role)), user, lambda m: inbox.put_nowait(encode(m))
        )
        holder.append(session)
        task = tg.create_task(pump(client))
        async with asyncio.timeout(5):
            await joined_future
        try:
            yield client
        finally:
            task.cancel()
            await session.leave()


async def until(predicate: Callable[[], bool], deadline: float) -> float:
    """Waits for ``predicate`` (media counters have no event of their own), re-checking
    every 10 ms; returns the time it took. Raises TimeoutError after ``deadline`` s."""
    start = time.monotonic()
    async with asyncio.timeout(deadline):
        while not predicate():  # noqa: ASYNC110 - no event exists for frame counters
            await asyncio.sleep(0.01)
    return time.monotonic() - start


def only(slots: list[Received]) -> Received:
    assert len(slots) == 1, slots
    return slots[0]


class Sent(MediaStreamTrack):
    """A publisher's track that counts its frames as they leave for the encoder, the way a
    subscriber's slot counts what it decodes (:class:`sfu.client.Received`).

    Rates decoded by subscribers are judged against what was sent in the same window:
    on a starved machine the synthetic publisher slows down with the decoders (both run
    in the test process), and a fixed absolute rate would then blame the SFU.
    """

    def __init__(self, track: MediaStreamTrack) -> None:
        super().__init__()
        self.kind = track.kind
        self.track = track
        self.sent = Received("sent", track.kind)

    async def recv(self) -> Any:
        frame = await self.track.recv()
        self.sent.count(frame)
        return frame

    def rate(self, since: float, until: float) -> float:
        return self.sent.rate(since, until)
