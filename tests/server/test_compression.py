"""Large messages (first syncs, catch-ups) leave deflated, small ones plain, on a live server."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import websockets
from pycrdt import Map
from websockets.extensions.permessage_deflate import PerMessageDeflate
from websockets.frames import Frame, Opcode

from server.auth import Role, issue
from server.ws_protocol import COMPRESS_MIN_BYTES, LargeMessageDeflate
from tests.collab.test_slices import board

from .live import live_server, settings_for
from .wspeer import WsPeer

pytestmark = pytest.mark.anyio
SECRET = "deflate-secret-" + "0123456789abcdef" * 4


def deflate() -> LargeMessageDeflate:
    return LargeMessageDeflate(False, True, 15, 15, {"memLevel": 8})


def test_small_messages_stay_plain_and_large_ones_are_compressed() -> None:
    ext = deflate()
    small = Frame(Opcode.BINARY, b"\x01" * (COMPRESS_MIN_BYTES - 1))
    assert ext.encode(small) is small
    payload = board(40).get_update()
    assert len(payload) >= COMPRESS_MIN_BYTES
    encoded = ext.encode(Frame(Opcode.BINARY, payload))
    assert encoded.rsv1
    assert len(encoded.data) < len(payload) * 0.5
    # A peer's decoder reads both: plain frames pass through, compressed ones inflate.
    reader = PerMessageDeflate(True, False, 15, 15)
    assert reader.decode(small).data == small.data
    assert reader.decode(encoded).data == payload


class CountingProxy:
    """Forwards a TCP connection and counts the bytes sent to the client."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.down = 0
        self.port = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> CountingProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await task
        await self._server.wait_closed()

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        for reader, writer, down in ((client_r, server_w, False), (server_r, client_w, True)):
            task = asyncio.create_task(self._pipe(reader, writer, down))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pipe(self, r: asyncio.StreamReader, w: asyncio.StreamWriter, down: bool) -> None:
        with contextlib.suppress(OSError):
            while data := await r.read(65536):
                if down:
                    self.down += len(data)
                w.write(data)
                await w.drain()
        w.close()


@pytest.fixture(params=[True, False], ids=["compressed", "plain"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, bool]]:
    with live_server(settings_for(tmp_path, SECRET), compression=request.param) as url:
        yield url, request.param


def url(base: str, user: str) -> str:
    token = issue(SECRET, classroom="c1", role=Role.TUTOR, user_id=user)
    return f"{base}/ws/c1/board?token={token}"


async def test_a_large_first_sync_crosses_the_wire_deflated(server: tuple[str, bool]) -> None:
    base, compressed = server
    source = board(2000)
    async with WsPeer(url(base, "tutor")) as tutor:
        await tutor.edit(lambda d: d.apply_update(source.get_update()))
        port = int(base.rsplit(":", 1)[1])
        async with CountingProxy(port) as proxy:
            async with WsPeer(url(f"ws://127.0.0.1:{proxy.port}", "student")) as student:
                expected = source.get("shapes", type=Map).to_py()
                assert student.doc.get("shapes", type=Map).to_py() == expected
            size = len(source.get_update())
            if compressed:
                assert proxy.down < size * 0.45, f"{proxy.down} bytes for a {size}-byte board"
            else:
                assert proxy.down > size


async def test_live_updates_reach_a_compression_capable_reader(server: tuple[str, bool]) -> None:
    """Negotiation follows the setting; a small live update arrives either way."""
    base, compressed = server
    async with WsPeer(url(base, "tutor")) as tutor:
        raw = await websockets.connect(url(base, "raw"), compression="deflate", max_size=None)
        try:
            negotiated = raw.protocol.extensions
            assert bool(negotiated) is compressed
            async with asyncio.timeout(5):
                opening = await raw.recv()  # in the room: the server opens with SyncStep1
            assert isinstance(opening, bytes)
            assert opening[:2] == b"\x00\x00"
            await tutor.edit(lambda d: d.get("shapes", type=Map).__setitem__("s1", "x"))
            async with asyncio.timeout(5):
                while True:
                    frame = await raw.recv()
                    assert isinstance(frame, bytes)
                    if frame[:2] == b"\x00\x02":
                        break
        finally:
            await raw.close()


def test_the_inflater_is_made_at_the_first_compressed_message_and_keeps_its_context() -> None:
    # The server's side: the client keeps its compression context (no takeover flag).
    server_side = LargeMessageDeflate(False, True, 12, 12, {"memLevel": 8})
    client_side = PerMessageDeflate(True, False, 12, 12)  # a browser: compresses everything
    plain = Frame(Opcode.BINARY, b"\x01\x01 a cursor, sent plain")
    assert server_side.decode(plain).data == plain.data
    assert server_side._decoder is None  # nothing compressed yet: no zlib state held
    messages = [b"\x00\x02 a stroke of ink, and again: a stroke of ink" * 3 for _ in range(4)]
    frames = [client_side.encode(Frame(Opcode.BINARY, m)) for m in messages]
    assert all(f.rsv1 for f in frames)
    # Later messages refer back to earlier ones (context kept): smaller than the first.
    assert len(frames[1].data) < len(frames[0].data)
    assert [server_side.decode(f).data for f in frames] == messages
    assert server_side._decoder is not None
