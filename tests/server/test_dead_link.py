"""A link that goes silent (no FIN, no RST) is found by WebSocket pings, and its presence
is removed for everyone else."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import websockets

from collab.awareness import Entry, decode_entries, encode_entries
from collab.protocol import AwarenessMessage, SyncStep1, decode
from server.auth import Role, issue

from .live import live_server, settings_for
from .proxy import FreezableProxy

pytestmark = pytest.mark.anyio
SECRET = "ping-secret-" + "0123456789abcdef" * 4
PING = 0.5  # interval and timeout for this test; the default is 7 s + 7 s (< 15 s)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    with live_server(settings_for(tmp_path, SECRET), ping_interval=PING) as url:
        yield url


async def test_silent_dead_link_is_detected_and_its_cursor_removed(server: str) -> None:
    port = int(server.rsplit(":", 1)[1])
    token = issue(SECRET, classroom="c1", role=Role.STUDENT, user_id="phone")
    watcher_token = issue(SECRET, classroom="c1", role=Role.TUTOR, user_id="tutor")
    async with (
        FreezableProxy(port) as proxy,
        websockets.connect(f"ws://127.0.0.1:{proxy.port}/ws/c1/board?token={token}") as phone,
        websockets.connect(f"{server}/ws/c1/board?token={watcher_token}") as watcher,
    ):
        await phone.send(bytes(AwarenessMessage(encode_entries([Entry(5, 1, '{"u":"p"}')]))))
        present: set[int] = set()

        async def watch_until(predicate: object) -> None:
            async with asyncio.timeout(15):
                while not predicate():  # type: ignore[operator]
                    message = decode(await watcher.recv())  # type: ignore[arg-type]
                    if isinstance(message, AwarenessMessage):
                        for e in decode_entries(message.payload, max_state_bytes=1 << 16):
                            (present.discard if e.removed else present.add)(e.client_id)

        await watch_until(lambda: 5 in present)
        assert isinstance(decode(await phone.recv()), SyncStep1)  # type: ignore[arg-type]
        proxy.freeze()
        frozen_at = time.monotonic()
        await watch_until(lambda: 5 not in present)
        detected = time.monotonic() - frozen_at
    # Worst case is one interval to the next ping plus the pong timeout.
    assert detected < 2 * PING + 1.0
