"""Joins to a large board share one encoding on the wire, and joiners that stop reading
hold back neither that room nor any other."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import websockets
from pycrdt import Array, Doc, Map

from server.auth import Role, issue
from server.ws_protocol import WIRE_CACHE
from tests.collab.test_slices import board
from tests.replica import Replica

from .live import live_server, settings_for
from .wspeer import WsPeer

pytestmark = pytest.mark.anyio
SECRET = "storm-secret-" + "0123456789abcdef" * 4


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    with live_server(settings_for(tmp_path, SECRET), compression=True) as url:
        yield url


def url(server: str, document: str, user: str) -> str:
    classroom = document.split("/")[0]
    token = issue(SECRET, classroom=classroom, role=Role.TUTOR, user_id=user)
    return f"{server}/ws/{document}?token={token}"


async def test_stalled_joiners_of_a_large_board_delay_no_other_room(server: str) -> None:
    source = board(1500)
    async with WsPeer(url(server, "big/board", "owner")) as owner:
        await owner.edit(lambda d: d.apply_update(source.get_update()))
        hits = WIRE_CACHE.hits
        # Joiners that ask for the whole board, then never read: the server's writes to
        # them stall on TCP backpressure half-way through the board.
        stalled = [
            await websockets.connect(
                url(server, "big/board", f"stalled-{i}"),
                max_size=None,
                max_queue=1,
                compression="deflate",
                close_timeout=0.5,
            )
            for i in range(4)
        ]
        try:
            for ws in stalled:
                await ws.send(Replica().hello())
            async with (
                WsPeer(url(server, "other/board", "writer")) as writer,
                WsPeer(url(server, "other/board", "reader")) as reader,
            ):
                worst = 0.0
                for i in range(1, 41):
                    began = time.monotonic()

                    def append(d: Doc[Any], n: int = i) -> None:
                        d.get("a", type=Array).append(n)

                    def arrived(n: int = i) -> bool:
                        return len(reader.doc.get("a", type=Array)) == n

                    await writer.edit(append)
                    await reader.until(arrived, 5)
                    worst = max(worst, time.monotonic() - began)
                # Generous for a loaded 2-core machine: a room stuck behind 4 x 300 KB
                # would take seconds per update; speed itself is measured in bench/.
                assert worst < 1.5, f"slowest update took {worst:.2f} s"
            # The same room still serves a joiner that reads, in full.
            async with WsPeer(url(server, "big/board", "late")) as late:
                # Synced: it holds the whole board.
                assert late.doc.get("shapes", type=Map).to_py() == (
                    source.get("shapes", type=Map).to_py()
                )
                assert owner.doc.get("shapes", type=Map).to_py() == (
                    late.doc.get("shapes", type=Map).to_py()
                )
            # Every joiner's first slices were deflated once and reused.
            assert WIRE_CACHE.hits > hits
        finally:
            for ws in stalled:
                await ws.close()
