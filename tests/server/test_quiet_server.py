"""uvicorn's server with a once-a-second housekeeping tick that a signal still ends at once."""

from __future__ import annotations

import asyncio
import itertools
import signal
import time
from typing import Any

import pytest
import uvicorn

from server.http_protocol import QuietServer, uvicorn_options

from .live import free_port

pytestmark = pytest.mark.anyio


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})


async def test_ticks_once_a_second_and_a_signal_ends_it_without_waiting_for_a_tick() -> None:
    config = uvicorn.Config(
        _app, host="127.0.0.1", port=free_port(), log_config=None, **uvicorn_options()
    )
    server = QuietServer(config)
    ticks: list[float] = []
    third = asyncio.Event()
    on_tick = server.on_tick

    async def counted(counter: int) -> bool:
        ticks.append(time.monotonic())
        if len(ticks) == 3:
            third.set()
        return await on_tick(counter)

    server.on_tick = counted  # type: ignore[method-assign]
    serving = asyncio.create_task(server.serve())
    async with asyncio.timeout(10):
        await third.wait()
    # The first tick comes at start-up; the two gaps after it are the loop's.
    gaps = [b - a for a, b in itertools.pairwise(ticks[:3])]
    assert all(gap > 0.8 for gap in gaps), gaps  # uvicorn's own loop ticks every 0.1 s
    assert server.server_state.default_headers, "the Date header is kept fresh"
    stopping = time.monotonic()
    server.handle_exit(signal.SIGTERM, None)
    # uvicorn raises a captured signal again once it has stopped (for the process's own
    # handler): here that would end the test run.
    server._captured_signals.clear()
    async with asyncio.timeout(10):
        await serving
    # Woken by the signal, not by the next tick (which could be up to a second away).
    assert ticks[-1] - stopping < 0.5
