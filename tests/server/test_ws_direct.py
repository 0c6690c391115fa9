"""Document sockets served straight from the HTTP upgrade (server/ws_direct.py).

The handshake as a pure function (RFC 6455's own example, refusals, compression, and a
property: any header list gives a 101 with the right accept value or a refusal, nothing
else), then real sockets against a real uvicorn server with Inkroom's HTTP protocol and
an app whose ``open_document_socket`` the test controls.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
from collections.abc import AsyncIterator, Callable
from socket import SO_RCVBUF, SOL_SOCKET
from typing import Any

import pytest
import uvicorn
from hypothesis import given
from hypothesis import strategies as st
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode

from collab.ports import Disconnected
from server.http_protocol import uvicorn_options
from server.ws_direct import DirectSocket, HandshakeRefused, handshake
from server.ws_protocol import INBOX_BYTES, InkroomWebSocketProtocol
from tests.collab.peers import eventually

from .live import free_port

KEY = b"dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455 1.3
GOOD = [
    (b"host", b"x"),
    (b"upgrade", b"websocket"),
    (b"connection", b"keep-alive, Upgrade"),
    (b"sec-websocket-key", KEY),
    (b"sec-websocket-version", b"13"),
]


def _without(name: bytes) -> list[tuple[bytes, bytes]]:
    return [(n, v) for n, v in GOOD if n != name]


def test_the_rfc_example_key_gets_its_accept_value_and_no_compression_unless_offered() -> None:
    response, extension = handshake(GOOD, compression=True)
    assert response.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    assert b"\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" in response
    assert response.endswith(b"\r\n\r\n")
    assert extension is None
    assert b"Extensions" not in response


def test_compression_is_agreed_only_when_offered_and_enabled() -> None:
    offer = [*GOOD, (b"sec-websocket-extensions", b"permessage-deflate; client_max_window_bits")]
    response, extension = handshake(offer, compression=True)
    assert extension is not None
    assert b"Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover" in response
    assert handshake(offer, compression=False)[1] is None
    unknown = [*GOOD, (b"sec-websocket-extensions", b"x-unknown")]
    assert handshake(unknown, compression=True)[1] is None


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        (_without(b"upgrade"), 400),
        (_without(b"connection"), 400),
        (_without(b"sec-websocket-key"), 400),
        ([*_without(b"sec-websocket-key"), (b"sec-websocket-key", b"short")], 400),
        ([*GOOD, (b"sec-websocket-key", KEY)], 400),
        ([*_without(b"sec-websocket-version"), (b"sec-websocket-version", b"8")], 426),
        ([*GOOD, (b"sec-websocket-extensions", b"permessage-deflate; =")], 400),
    ],
)
def test_invalid_handshakes_are_refused_with_a_status(
    headers: list[tuple[bytes, bytes]], status: int
) -> None:
    with pytest.raises(HandshakeRefused) as refused:
        handshake(headers, compression=True)
    assert refused.value.status == status
    response = refused.value.response()
    assert response.startswith(f"HTTP/1.1 {status} ".encode())
    head, body = response.split(b"\r\n\r\n", 1)
    assert f"Content-Length: {len(body)}".encode() in head


_names = st.sampled_from([n for n, _ in GOOD] + [b"sec-websocket-extensions", b"x-other"])
_values = st.one_of(st.sampled_from([v for _, v in GOOD]), st.binary(max_size=40))


@given(st.lists(st.tuples(_names, _values), max_size=8), st.booleans())
def test_any_headers_give_a_correct_101_or_a_refusal(
    headers: list[tuple[bytes, bytes]], compression: bool
) -> None:
    try:
        response, _ = handshake(headers, compression)
    except HandshakeRefused as refused:
        status = refused.status
    else:
        status = 101
    if status != 101:
        assert status in (400, 426)
        return
    [key] = [v for n, v in headers if n == b"sec-websocket-key"]
    accept = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
    assert b"Sec-WebSocket-Accept: " + accept + b"\r\n" in response


# -- real sockets ----------------------------------------------------------------------


class _App:
    """An ASGI app with ``open_document_socket``; other sockets are accepted through ASGI
    and recorded."""

    def __init__(self, opener: Callable[[DirectSocket, str, str | None], Any]) -> None:
        self.open_document_socket = opener
        self.asgi_paths: list[str] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        assert scope["type"] == "websocket"
        self.asgi_paths.append(scope["path"])
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", "code": 4000})


@contextlib.asynccontextmanager
async def _serving(app: _App) -> AsyncIterator[int]:
    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_config=None,
        ws=InkroomWebSocketProtocol,
        ws_per_message_deflate=False,
        **uvicorn_options(),
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    try:
        await eventually(lambda: server.started, deadline=10)
        yield port
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, 15)


class _Opened:
    """The sockets the app was handed, with what each received and how it ended."""

    def __init__(self, *, listen_after: asyncio.Event | None = None) -> None:
        self.sockets: list[tuple[DirectSocket, str, str | None]] = []
        self.messages: list[bytes] = []
        self.ended: asyncio.Future[BaseException] | None = None
        self._listen_after = listen_after

    async def __call__(self, socket: DirectSocket, document: str, token: str | None) -> None:
        self.sockets.append((socket, document, token))
        ended = self.ended = asyncio.get_running_loop().create_future()
        if self._listen_after is not None:
            await self._listen_after.wait()

        def on_end(exc: BaseException) -> None:
            if not ended.done():
                ended.set_result(exc)

        socket.listen(self.messages.append, on_end)
        await ended


def _request(port: int, path: str, *extra: str) -> bytes:
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Key: " + KEY.decode(),
        "Sec-WebSocket-Version: 13",
        *extra,
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _masked(data: bytes, opcode: Opcode = Opcode.BINARY) -> bytes:
    return Frame(opcode, data).serialize(mask=True, extensions=[])


@pytest.mark.anyio
async def test_the_document_token_address_device_and_bytes_sent_with_the_request() -> None:
    opened = _Opened()
    async with _serving(_App(opened)) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        request = _request(
            port,
            "/ws/c1/bo%61rd?x=1&token=abc",
            "X-Forwarded-For: 203.0.113.7",  # from 127.0.0.1, uvicorn's trusted proxy
            "User-Agent: test-agent/1",
        )
        # A frame in the same write as the request head: it must not be lost.
        writer.write(request + _masked(b"\x00\x00\x01\x00"))
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 101 ")
        assert b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in head
        await eventually(lambda: bool(opened.messages), deadline=10)
        [(socket, document, token)] = opened.sockets
        assert (document, token) == ("c1/board", "abc")
        assert (socket.address, socket.device) == ("203.0.113.7", "test-agent/1")
        assert opened.messages == [b"\x00\x00\x01\x00"]
        writer.close()
        assert opened.ended is not None
        ended = await asyncio.wait_for(opened.ended, 5)
        assert isinstance(ended, Disconnected)


@pytest.mark.anyio
async def test_what_arrives_before_the_session_listens_is_bounded_and_kept_in_order() -> None:
    go = asyncio.Event()
    opened = _Opened(listen_after=go)
    sent = [bytes([i]) * 4096 for i in range(160)]  # 640 KiB, ten times the bound
    async with _serving(_App(opened)) as port, connect(f"ws://127.0.0.1:{port}/ws/c1/board") as ws:
        await eventually(lambda: bool(opened.sockets), deadline=10)
        socket = opened.sockets[0][0]
        writing = asyncio.gather(*(ws.send(m) for m in sent))
        try:
            await eventually(lambda: not socket.transport.is_reading(), deadline=10)
            # Paused past the bound, by at most one read of the transport (256 KiB): the
            # rest of what was sent waits in the kernel's buffers, not in the server.
            assert INBOX_BYTES < socket._early_bytes <= INBOX_BYTES + 256 * 1024
            assert len(opened.messages) == 0
        finally:
            go.set()
        await eventually(lambda: len(opened.messages) == len(sent), deadline=10)
        await asyncio.wait_for(writing, 5)
        assert opened.messages == sent
        assert socket.transport.is_reading()


@pytest.mark.anyio
async def test_the_peers_close_ends_the_session_with_its_code_and_is_answered() -> None:
    opened = _Opened()
    async with _serving(_App(opened)) as port:
        async with connect(f"ws://127.0.0.1:{port}/ws/c1/board") as ws:
            await eventually(lambda: opened.ended is not None, deadline=10)
            await ws.close(4321, "bye")
        assert ws.close_code == 4321  # the server echoed it: a clean closing handshake
        assert opened.ended is not None
        ended = await asyncio.wait_for(opened.ended, 5)
        assert isinstance(ended, Disconnected)
        assert ended.code == 4321


@pytest.mark.anyio
async def test_the_servers_close_reaches_the_client_with_code_and_reason() -> None:
    closed = asyncio.Event()

    async def opener(socket: DirectSocket, document: str, token: str | None) -> None:
        await socket.close(4403, "r" * 300)  # longer than a close frame can carry
        closed.set()

    async with _serving(_App(opener)) as port:
        async with connect(f"ws://127.0.0.1:{port}/ws/c1/board") as ws:
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 5)
        assert ws.close_code == 4403
        assert ws.close_reason == "r" * 123
        assert closed.is_set()


@pytest.mark.anyio
async def test_bad_upgrades_get_their_status_and_other_paths_stay_on_asgi() -> None:
    app = _App(_Opened())
    async with _serving(app) as port:
        for extra, status in (("Sec-WebSocket-Version: 8", b"426"), ("", b"101")):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            request = _request(port, "/ws/c1/board")
            if extra:
                request = request.replace(b"Sec-WebSocket-Version: 13", extra.encode())
            writer.write(request)
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            assert head.split(b" ")[1] == status
            writer.close()
        async with connect(f"ws://127.0.0.1:{port}/sfu/c1") as ws:
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 5)
            assert ws.close_code == 4000
        assert app.asgi_paths == ["/sfu/c1"]


@pytest.mark.anyio
async def test_a_peer_that_stops_reading_cannot_hold_a_closed_socket(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(DirectSocket, "close_timeout", 0.5)
    lost = asyncio.Event()
    written = 0

    async def opener(socket: DirectSocket, document: str, token: str | None) -> None:
        nonlocal written
        socket.listen(lambda message: None, lambda exc: lost.set())
        chunk = bytes(64 * 1024)
        # Until the transport's buffer is full: the kernel's buffers are full before it.
        while written < 256 * 1024 * 1024 and socket.send_nowait(chunk):
            written += len(chunk)
        await socket.close(4000, "going away")

    async with _serving(_App(opener)) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.get_extra_info("socket").setsockopt(SOL_SOCKET, SO_RCVBUF, 4096)
        writer.write(_request(port, "/ws/c1/board"))
        assert (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)).startswith(
            b"HTTP/1.1 101 "
        )
        writer.transport.pause_reading()  # type: ignore[attr-defined]  # a socket transport; never reads again
        # The close frame sits behind what the peer never took; without an abort the
        # socket would stay open for as long as the peer's TCP stack answers.
        await asyncio.wait_for(lost.wait(), 10)
        assert written > 0
        writer.close()
