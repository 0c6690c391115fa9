"""``/ws/{document}``: the y-websocket endpoint."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from starlette.websockets import WebSocket, WebSocketDisconnect

from collab.errors import CollabError, UnsupportedData
from collab.ports import Connection, Disconnected, DocumentName
from collab.protocol import PermissionDenied
from collab.session import serve

from ..auth import Claims, Role, authorize, require_document, verify
from ..classroom import CLASS_SUFFIX, class_of
from ..connections import classroom_of
from ..errors import ServerError
from ..state import AppState

log = logging.getLogger("inkroom.server.ws")


class DocumentSocket(Connection, Protocol):
    """A document's accepted socket: the session's Connection, plus what attendance
    records of where it came from."""

    device: str
    address: str


class StarletteConnection:
    """Adapts a Starlette WebSocket to :class:`collab.ports.Connection`: the ASGI path,
    where every message is an awaited send and the session reads with ``receive``.

    It keeps the ASGI callables and what attendance needs (device, address).
    """

    __slots__ = ("_receive", "_send", "address", "device")

    def __init__(self, websocket: WebSocket) -> None:
        self._receive = websocket._receive
        self._send = websocket._send
        # The browser or client that opened the socket, and from where (attendance).
        self.device: str = websocket.headers.get("user-agent", "")[:255]
        self.address: str = websocket.client.host if websocket.client else ""

    async def receive(self) -> bytes:
        return _payload(await self._receive())

    def listen(
        self, on_message: Callable[[bytes], None], on_end: Callable[[BaseException], None]
    ) -> bool:
        return False  # ASGI has no callback for a received message

    async def send(self, data: bytes) -> None:
        try:
            await self._send({"type": "websocket.send", "bytes": data})
        except (OSError, RuntimeError, WebSocketDisconnect) as exc:
            raise Disconnected(None) from exc

    def send_nowait(self, data: bytes) -> bool:
        return False  # every ASGI send is awaited

    def send_many_nowait(self, data: Sequence[bytes]) -> bool:
        return False

    async def drained(self) -> None:
        return None  # ``send`` itself waits for the server's flow control

    async def close(self, code: int, reason: str = "") -> None:
        try:
            await self._send({"type": "websocket.close", "code": int(code), "reason": reason})
        except Exception:  # already closed by the peer or the server: nothing left to do
            log.debug("close after disconnect", extra={"code": int(code)})


def _payload(message: Any) -> bytes:
    """A received ASGI message's bytes. Raises :class:`UnsupportedData` for text and
    :class:`Disconnected` for the end of the connection."""
    kind = message["type"]
    if kind == "websocket.receive":
        data = message.get("bytes")
        if data is None:
            raise UnsupportedData("text frames are not part of the y-websocket protocol")
        return bytes(data)
    if kind == "websocket.disconnect":
        raise Disconnected(message.get("code"))
    raise Disconnected(None)


async def websocket_endpoint(websocket: WebSocket) -> None:
    """The endpoint through ASGI (another ASGI server, Starlette's test client); uvicorn
    with Inkroom's HTTP protocol serves these sockets directly (server/ws_direct.py)."""
    state: AppState = websocket.app.state.inkroom
    await websocket.accept()
    document = websocket.path_params["document"]
    token = websocket.query_params.get("token")
    await open_document(state, StarletteConnection(websocket), document, token)


async def open_document(
    state: AppState, connection: DocumentSocket, document: str, token: str | None
) -> None:
    """Serves an accepted socket for ``document``: authorises ``token``, admits the user
    to the classroom, and runs the session until it ends. Refusals are closes with a 44xx
    code."""
    try:
        claims = verify(state.secret, token)
        authorize(claims, document)
        require_document(claims, document)
        refusal = await state.join_gate.refusal(document)
        if refusal is not None:
            raise refusal
        lease = state.quotas.acquire(claims.user_id, claims.classroom)
        try:
            # The owner's subscription and the plan's class size (server/admission.py).
            seat = await state.admission.admit(classroom_of(document), claims.user_id, claims.role)
        except BaseException:
            lease.release()
            raise
    except ServerError as exc:
        await _refuse(connection, document, exc)
        return
    try:
        await _serve(state, connection, document, claims)
    finally:
        seat.release()
        lease.release()


async def _refuse(connection: DocumentSocket, document: str, exc: ServerError) -> None:
    # Accepted first, then closed with a 44xx code: a refusal during the handshake
    # reaches the browser as 1006, which the stock client retries forever.
    log.warning("connection refused: %s", exc, extra={"document": document, "code": exc.close_code})
    with contextlib.suppress(Disconnected):  # it may already have gone
        await connection.send(bytes(PermissionDenied(str(exc))))
    await connection.close(exc.close_code, str(exc))


async def _serve(
    state: AppState, connection: DocumentSocket, document: str, claims: Claims
) -> None:
    fields = {"document": document}
    peer = claims.peer()
    class_name = class_of(document)
    # Tracked, so an archive or a removal can end it (server/connections.py).
    async with state.connections.track(claims, document, connection):
        if claims.role not in (Role.TUTOR, Role.STUDENT) or document.endswith(CLASS_SUFFIX):
            await serve(state.registry, connection, DocumentName(document), peer)
            return
        # Writes are judged against the live classroom document (a student's board
        # writes, anyone's role override), so it stays loaded while they are connected.
        try:
            async with state.registry.hold(class_name):
                await serve(state.registry, connection, DocumentName(document), peer)
        except CollabError as exc:  # the classroom document could not be loaded
            log.warning("join refused: %s", exc, extra={**fields, "code": int(exc.close_code)})
            await connection.close(exc.close_code, str(exc))
