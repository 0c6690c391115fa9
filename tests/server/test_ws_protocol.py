"""The pre-framed binary frames of the direct send path, checked by websockets' own parser."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from server.ws_protocol import binary_frame


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536, 300_000])
def test_binary_frame_parses_as_one_unmasked_final_binary_frame(size: int) -> None:
    payload = bytes(i % 251 for i in range(size))
    reader = StreamReader()
    reader.feed_data(binary_frame(payload))
    parser = Frame.parse(reader.read_exact, mask=False)
    try:
        next(parser)
        raise AssertionError("the frame was incomplete")
    except StopIteration as done:
        frame = done.value
    assert isinstance(frame, Frame)
    assert (frame.opcode, frame.fin, frame.data) == (Opcode.BINARY, True, payload)
    assert not reader.buffer, "nothing after the one frame"


def test_short_header_bytes_match_rfc_6455() -> None:
    assert binary_frame(b"\x01\x02") == b"\x82\x02\x01\x02"
    assert binary_frame(bytes(126))[:4] == b"\x82\x7e\x00\x7e"
    assert binary_frame(bytes(65536))[:10] == b"\x82\x7f" + (65536).to_bytes(8, "big")


class _Pinged:
    """Stands in for a connection: records pings, answers them unless told not to."""

    def __init__(self, keepalive: Any, answers: bool) -> None:
        self.keepalive_slot: Any = None
        self.last_heard = float("-inf")
        self.keepalive = keepalive
        self.answers = answers
        self.pings: list[float] = []
        self.timed_out = asyncio.Event()
        self.pinged = asyncio.Event()

    def ping(self, payload: bytes, now: float) -> bool:
        self.pings.append(now)
        self.pinged.set()
        if self.answers:
            asyncio.get_running_loop().call_soon(self.keepalive.answered, self)
        return True

    def keepalive_timeout(self) -> None:
        self.timed_out.set()


@pytest.mark.anyio
async def test_one_timer_pings_every_connection_once_per_interval_spread_out() -> None:
    from server.ws_protocol import Keepalive

    loop = asyncio.get_running_loop()
    interval = 0.32
    keepalive = Keepalive(loop, interval, timeout=interval)
    alive = [_Pinged(keepalive, answers=True) for _ in range(64)]
    dead = _Pinged(keepalive, answers=False)
    for connection in [*alive, dead]:
        keepalive.add(connection)
    started = loop.time()
    async with asyncio.timeout(10):
        await dead.timed_out.wait()
    elapsed = loop.time() - started
    # Found within interval + timeout, plus scheduling slack on a busy machine.
    assert elapsed < 2 * interval + 1.0
    assert len(dead.pings) == 1
    assert len(keepalive) == 64  # the dead one left the wheel
    # On a loaded machine ticks run late, so the wheel may not have gone round yet when
    # the dead link is found: wait (bounded) for the slots still to come.
    async with asyncio.timeout(10):
        await asyncio.gather(*(c.pinged.wait() for c in alive))
    elapsed = loop.time() - started
    # Everyone answering was pinged, about once per interval (never twice per tick)...
    assert all(1 <= len(c.pings) <= 3 + elapsed / interval for c in alive)
    # ...and not all at once: first pings land on many different ticks.
    first = sorted(c.pings[0] for c in alive)
    assert len({round((t - started) / (interval / Keepalive.SLOTS)) for t in first}) >= 8
    for connection in alive:
        keepalive.remove(connection)
    assert len(keepalive) == 0


@pytest.mark.anyio
async def test_the_writable_flag_releases_every_waiter_on_set_and_forgets_cancelled_ones() -> None:
    from server.ws_protocol import Flag

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
