"""``/sfu/{classroom}``: call signaling, JSON text frames (docs/sfu.md).

The same tokens and roles as the documents: a bad token closes with 4401, a token for
another classroom with 4403, both after the handshake so browsers see the code. The first
message must be ``join``; after it every frame goes to the participant's
:class:`sfu.service.Session`, which answers anything malformed with an ``error`` message
and leaves the call untouched. Replies go through one bounded outbox per connection with
one writer task; a client that stops reading is closed with 1013.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from starlette.websockets import WebSocket, WebSocketDisconnect

from collab.budgets import TokenBucket
from collab.errors import CloseCode, CollabError
from sfu.errors import ErrorCode, SfuError, SignalingError
from sfu.placement import CallElsewhere
from sfu.policy import Member
from sfu.policy import Role as CallRole
from sfu.service import Session
from sfu.signaling import Error, Join, Redirect, ServerMessage, encode, parse

from ..admission import PAUSED, STAFF_ROLES, PaymentRequired, VideoNotIncluded
from ..auth import Role, authorize, verify
from ..errors import ServerError
from ..state import AppState
from ..turn import ice_servers

log = logging.getLogger("inkroom.server.sfu")

OUTBOX_MESSAGES = 256
# The call is open on another node: the client reconnects to the `redirect` message's URL.
CALL_ELSEWHERE = 4307
# Signaling is a few messages a second; trickled candidates come in bursts of tens. Every
# offer costs aiortc real work, so a flood closes the connection (1008), not the call.
MESSAGES_PER_SECOND = 50.0
MESSAGE_BURST = 200
REASONS: dict[int, str] = {
    CloseCode.TRY_AGAIN_LATER: "too slow to read signaling",
    CloseCode.POLICY_VIOLATION: "too many signaling messages",
}
CALL_ROLES = {
    Role.TUTOR: CallRole.TUTOR,
    Role.ADMIN: CallRole.TUTOR,
    Role.STUDENT: CallRole.STUDENT,
    Role.OBSERVER: CallRole.OBSERVER,
}


class _Outbox:
    """Encodes each server message once and queues it for the writer task; an ``int`` in
    the queue is the close code the writer ends with."""

    def __init__(self) -> None:
        # One place beyond the limit, kept for the close code.
        self.queue: asyncio.Queue[str | int] = asyncio.Queue(OUTBOX_MESSAGES + 1)
        self.finished = False

    def put(self, message: ServerMessage) -> None:
        if self.finished:
            return
        if self.queue.qsize() >= OUTBOX_MESSAGES:
            self.finish(CloseCode.TRY_AGAIN_LATER, drop=True)
        else:
            self.queue.put_nowait(encode(message))

    def finish(self, code: int, *, drop: bool = False) -> None:
        if self.finished:
            return
        self.finished = True
        if drop:  # a client too slow to read its replies: nothing queued matters now
            while not self.queue.empty():
                self.queue.get_nowait()
        self.queue.put_nowait(code)


async def _write(websocket: WebSocket, outbox: _Outbox) -> None:
    while True:
        item = await outbox.queue.get()
        if isinstance(item, int):
            await websocket.close(item, REASONS.get(item, ""))
            return
        await websocket.send_text(item)


async def _receive_text(websocket: WebSocket) -> str | None:
    """The next text frame; ``None`` when the client left. A binary frame is answered
    with an error (text frames only) and skipped."""
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return None
        text = message.get("text")
        if text is not None:
            return str(text)
        await websocket.send_text(
            encode(Error(ErrorCode.BAD_MESSAGE, "signaling uses text frames only"))
        )


async def sfu_endpoint(websocket: WebSocket) -> None:
    state: AppState = websocket.app.state.inkroom
    classroom = websocket.path_params["classroom"]
    await websocket.accept()
    try:
        claims = verify(state.secret, websocket.query_params.get("token"))
        authorize(claims, classroom)
        await _admit(state, classroom, claims.user_id, claims.role)
    except ServerError as exc:
        log.warning("call refused: %s", exc, extra={"classroom": classroom})
        await websocket.close(exc.close_code, str(exc))
        return
    assert state.sfu is not None
    assert state.call_policy is not None
    member = Member(claims.user_id, CALL_ROLES[claims.role])
    placed = True
    if websocket.query_params.get("check") == "1":
        # The /check page's media round trip: a call of its own, so the class never sees
        # it, with the same ICE servers and media path as the real one.
        member = Member(claims.user_id, CallRole.TUTOR)
        policy_scope: contextlib.AbstractAsyncContextManager[None] = contextlib.nullcontext()
        call_name = f"{classroom}/check/{claims.user_id}"
        placed = False  # a call of this node alone
    else:
        policy_scope = state.call_policy.watch(classroom)
        call_name = classroom
    try:
        # Wait for "join": anything else before it gets an error and changes nothing.
        while True:
            text = await _receive_text(websocket)
            if text is None:
                return
            try:
                if isinstance(parse(text), Join):
                    break
                raise SignalingError("join first")
            except SfuError as exc:
                await websocket.send_text(encode(Error(exc.code, str(exc))))
        async with policy_scope:
            outbox = _Outbox()
            try:
                session = await state.sfu.join(
                    call_name,
                    member,
                    claims.name,
                    outbox.put,
                    ice_servers=ice_servers(state.settings, claims.user_id),
                    placed=placed,
                )
            except CallElsewhere as exc:
                await websocket.send_text(encode(Redirect(exc.host.node, exc.host.url)))
                await websocket.close(CALL_ELSEWHERE, str(exc))
                return
            except SfuError as exc:
                await websocket.send_text(encode(Error(exc.code, str(exc))))
                await websocket.close(CloseCode.TRY_AGAIN_LATER, str(exc))
                return
            try:
                async with asyncio.TaskGroup() as tg:
                    writer = tg.create_task(_write(websocket, outbox), name="sfu-writer")
                    await _serve(websocket, session, outbox, writer)
            finally:
                await asyncio.shield(session.leave())
    except CollabError as exc:  # the classroom document could not be loaded
        log.warning("call refused: %s", exc, extra={"classroom": classroom})
        await websocket.close(exc.close_code, str(exc))
    except (WebSocketDisconnect, RuntimeError, OSError):
        log.debug("signaling connection dropped", extra={"classroom": classroom})


async def _admit(state: AppState, classroom: str, user_id: str, role: Role) -> None:
    """The documents' gate with ``video=True`` (server/admission.py), and one rule of its
    own: staff pass that gate whatever the owner's plan (they must see the banner on the
    board), but a call is the paid feature itself, so without access or without the plan's
    video nobody, the tutor included, starts one.

    Raises:
        PaymentRequired, VideoNotIncluded, ClassFull: closes with 4402 or 4413.
    """
    access = await state.admission.check(classroom, user_id, role, video=True)
    if role in STAFF_ROLES:
        if not access.has_access:
            raise PaymentRequired(PAUSED)
        if not access.entitlements.video:
            raise VideoNotIncluded("video calls are not part of the tutor's plan")


async def _serve(
    websocket: WebSocket, session: Session, outbox: _Outbox, writer: asyncio.Task[None]
) -> None:
    """Reads until the client leaves (the writer then flushes and closes with 1000), goes
    away, floods (1008), or is closed for reading too slowly (1013)."""
    budget = TokenBucket(MESSAGES_PER_SECOND, MESSAGE_BURST)
    while not writer.done():
        text = await _receive_text(websocket)
        if text is None:
            writer.cancel()
            return
        if not budget.take():
            outbox.finish(CloseCode.POLICY_VIOLATION, drop=True)
            return
        await session.receive(text)
        if session.left:
            outbox.finish(CloseCode.NORMAL)
            return
