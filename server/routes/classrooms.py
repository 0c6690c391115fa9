"""Classrooms, invite links, joining, and the page's access tokens.

Every endpoint that takes the session cookie also takes ``Authorization: Bearer`` with a
session token (from ``/api/auth/signin`` with ``"bearer": true``) or an access token
(``inkroom token``: an admin token manages every classroom, a tutor token its own).
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from collab.errors import BusUnavailable
from collab.ports import ControlCall, ControlKind

from ..accounts import AccountError, Classroom, Invite, now, valid_classroom_id
from ..admission import ClassFull, PaymentRequired
from ..auth import Role, issue
from ..errors import ARCHIVED, InvalidToken
from ..state import AppState
from ..web import (
    GRANT_COOKIE,
    GRANT_TTL,
    Principal,
    error,
    grant_member,
    issue_grant,
    json_body,
    principal,
    public_base,
    run,
    set_cookie,
)

log = logging.getLogger("inkroom.server.classrooms")

MAX_INVITE_SECONDS = 365 * 24 * 3600
MAX_USES = 10_000

# What a refused student or observer is told, by reason.
REFUSALS = {
    "revoked": "This invite link was turned off by the tutor. Ask your tutor for a new link.",
    "expired": "This invite link has expired. Ask your tutor for a new link.",
    "used-up": "This invite link has been used as many times as it allows. "
    "Ask your tutor for a new link.",
    "not-found": "This invite link does not exist. Check it, or ask your tutor for a new link.",
    "archived": "This classroom has been archived by the tutor and is closed.",
    "removed": "You were removed from this classroom. Ask your tutor if this is a mistake.",
}
STATUS = {"revoked": 403, "expired": 410, "used-up": 410, "not-found": 404, "archived": 410}


def _state(request: Request) -> AppState:
    state: AppState = request.app.state.inkroom
    return state


async def _who(request: Request) -> Principal | Response | None:
    state = _state(request)
    try:
        return await principal(request, state.directory, state.secret)
    except InvalidToken as exc:
        return error(401, str(exc), "signin")


def _refusal(reason: str) -> Response:
    return error(STATUS.get(reason, 403), REFUSALS.get(reason, "Access refused."), reason)


async def _admission_refusal(
    state: AppState, classroom: str, user_id: str | None, role: Role
) -> Response | None:
    """The refusal when the owner's subscription or the plan's class size keeps this
    student or observer out (``server/admission.py``); ``None`` when they may enter."""
    try:
        await state.admission.check(classroom, user_id or "", role)
    except (PaymentRequired, ClassFull) as exc:
        return error(exc.status_code, str(exc), exc.reason)
    return None


def _invite_json(request: Request, invite: Invite) -> dict[str, Any]:
    body = invite.public()
    body["url"] = f"{public_base(request, _state(request).settings)}/j/{invite.code}"
    return body


async def _classroom_json(
    request: Request, classroom: Classroom, *, with_invites: bool = True
) -> dict[str, Any]:
    state = _state(request)
    body = classroom.public()
    body["url"] = f"{public_base(request, state.settings)}/c/{classroom.id}"
    if with_invites:
        invites = await run(state.directory.invites, classroom.id)
        body["invites"] = [_invite_json(request, i) for i in invites if i.revoked_at is None]
    body["online"] = len(state.connections.users(classroom.id))
    return body


async def _managed(request: Request, classroom_id: str) -> tuple[Principal, Classroom] | Response:
    """The caller and the classroom, if the caller manages it; else the error response."""
    who = await _who(request)
    if isinstance(who, Response):
        return who
    if who is None:
        return error(401, "Sign in first.", "signin")
    state = _state(request)
    classroom = await run(state.directory.classroom, classroom_id)
    if not who.manages(classroom_id, classroom):
        return error(403, "This is not one of your classrooms.", "forbidden")
    if classroom is None:
        if who.account is not None or not valid_classroom_id(classroom_id):
            return error(404, "No such classroom.", "not-found")
        # A classroom known only from CLI tokens gets its row on first management.
        classroom = await run(
            state.directory.create_classroom, classroom_id, None, classroom_id=classroom_id
        )
    return who, classroom


managed = _managed  # for the other routes about one classroom (billing's banner)


async def list_classrooms(request: Request) -> Response:
    """``GET /api/classrooms``: the caller's classrooms (an admin's: all), newest first."""
    who = await _who(request)
    if isinstance(who, Response):
        return who
    if who is None:
        return error(401, "Sign in first.", "signin")
    state = _state(request)
    if who.is_admin:
        rows = await run(state.directory.classrooms)
    elif who.account is not None:
        rows = await run(state.directory.classrooms, who.account)
    else:
        assert who.claims is not None
        one = await run(state.directory.classroom, who.claims.classroom)
        rows = [one] if one and who.claims.role is Role.TUTOR else []
    items = [await _classroom_json(request, c) for c in rows]
    return JSONResponse({"classrooms": items}, headers={"Cache-Control": "no-store"})


async def create_classroom(request: Request) -> Response:
    """``POST /api/classrooms`` ``{"title"}``: a new classroom owned by the caller."""
    who = await _who(request)
    if isinstance(who, Response):
        return who
    if who is None:
        return error(401, "Sign in first.", "signin")
    if who.account is None and not who.is_admin:
        return error(403, "Only an account or an admin token can create classrooms.", "forbidden")
    body = await json_body(request)
    if body is None:
        return error(400, "body must be a JSON object", "invalid")
    try:
        classroom = await run(
            _state(request).directory.create_classroom, str(body.get("title") or ""), who.account
        )
    except AccountError as exc:
        return error(400, str(exc).capitalize() + ".", "invalid")
    return JSONResponse(await _classroom_json(request, classroom), status_code=201)


async def get_classroom(request: Request) -> Response:
    found = await _managed(request, request.path_params["classroom"])
    if isinstance(found, Response):
        return found
    return JSONResponse(await _classroom_json(request, found[1]))


async def update_classroom(request: Request) -> Response:
    """``PATCH /api/classrooms/{C}`` ``{"title"?, "archived"?}``: rename, archive, restore.

    Archiving ends every open connection to the classroom (close code 4410, "archived").
    """
    found = await _managed(request, request.path_params["classroom"])
    if isinstance(found, Response):
        return found
    _, classroom = found
    body = await json_body(request)
    if body is None:
        return error(400, "body must be a JSON object", "invalid")
    state = _state(request)
    try:
        if "title" in body:
            classroom = await run(
                state.directory.rename_classroom, classroom.id, str(body["title"] or "")
            )
        if "archived" in body:
            archived = body["archived"] is True
            classroom = await run(state.directory.set_archived, classroom.id, archived)
            state.join_gate.forget(classroom=classroom.id)
            if archived:
                await state.connections.end_classroom(classroom.id, 4410, ARCHIVED)
                await _end_on_every_node(state, classroom.id)
    except AccountError as exc:
        return error(400, str(exc).capitalize() + ".", "invalid")
    return JSONResponse(await _classroom_json(request, classroom))


async def _end_on_every_node(state: AppState, classroom: str) -> None:
    """The classroom's connections on the other nodes end too (this node's already have,
    with their goodbyes written); new joins there are refused once their kept verdict
    expires (server/join_gate.py, 2 s). The archive is stored either way: if the bus is
    down, the other nodes' connections stay until they reconnect and are refused."""
    try:
        await state.registry.bus.publish_control(
            ControlCall(ControlKind.CLASSROOM_ARCHIVED, classroom=classroom, reason=ARCHIVED)
        )
    except BusUnavailable:
        log.warning(
            "archived, but the other nodes were not told: the bus is down",
            extra={"classroom": classroom},
        )


async def list_invites(request: Request) -> Response:
    found = await _managed(request, request.path_params["classroom"])
    if isinstance(found, Response):
        return found
    invites = await run(_state(request).directory.invites, found[1].id)
    return JSONResponse({"invites": [_invite_json(request, i) for i in invites]})


async def create_invite(request: Request) -> Response:
    """``POST /api/classrooms/{C}/invites``: a join link ``/j/{code}``.

    Body: ``{"role": "student"|"observer", "expires_in": seconds, "max_uses": n}``, every
    field optional (``ttl`` is accepted for ``expires_in``). The answer's ``url`` is
    absolute: ``INKROOM_PUBLIC_URL``, else the base this request came in on.
    """
    found = await _managed(request, request.path_params["classroom"])
    if isinstance(found, Response):
        return found
    who, classroom = found
    if classroom.archived:
        return _refusal("archived")
    body = await json_body(request)
    if body is None:
        return error(400, "body must be a JSON object", "invalid")
    role = body.get("role", "student")
    if role not in ("student", "observer"):
        return error(400, "role must be student or observer", "invalid")
    seconds = body.get("expires_in", body.get("ttl"))
    if seconds is not None and (
        isinstance(seconds, bool)
        or not isinstance(seconds, int)
        or not 0 < seconds <= MAX_INVITE_SECONDS
    ):
        return error(400, f"expires_in must be 1..{MAX_INVITE_SECONDS} seconds", "invalid")
    max_uses = body.get("max_uses")
    if max_uses is not None and (
        isinstance(max_uses, bool) or not isinstance(max_uses, int) or not 0 < max_uses <= MAX_USES
    ):
        return error(400, f"max_uses must be 1..{MAX_USES}", "invalid")
    expires = now() + timedelta(seconds=seconds) if seconds else None
    invite = await run(
        _state(request).directory.create_invite,
        classroom.id,
        role=role,
        created_by=who.account,
        expires_at=expires,
        max_uses=max_uses,
    )
    return JSONResponse(_invite_json(request, invite), status_code=201)


async def revoke_invite(request: Request) -> Response:
    """``POST /api/invites/{code}/revoke`` (or ``DELETE /api/invites/{code}``).

    Nobody can join through the link any more, and those who joined through it lose
    access when their page next renews its token.
    """
    state = _state(request)
    invite = await run(state.directory.invite, request.path_params["code"])
    if invite is None:
        return error(404, "No such invite.", "not-found")
    found = await _managed(request, invite.classroom_id)
    if isinstance(found, Response):
        return found
    revoked = await run(state.directory.revoke_invite, invite.code)
    assert revoked is not None
    return JSONResponse(_invite_json(request, revoked))


async def invite_info(request: Request) -> Response:
    """``GET /api/join/{code}``: what the join screen shows (no secrets, no sign-in)."""
    state = _state(request)
    invite = await run(state.directory.invite, request.path_params["code"])
    if invite is None:
        return _refusal("not-found")
    classroom = await run(state.directory.classroom, invite.classroom_id)
    if classroom is None or classroom.archived:
        return _refusal("archived")
    status = invite.status()
    returning = grant_member(request, state.secret, classroom.id)
    if status != "ok" and not (status != "revoked" and returning):
        return _refusal(status)
    refused = await _admission_refusal(state, classroom.id, returning, Role(invite.role))
    if refused is not None:
        return refused
    body = {
        "classroom": {"id": classroom.id, "title": classroom.title},
        "role": invite.role,
        "returning": returning is not None,
    }
    return JSONResponse(body, headers={"Cache-Control": "no-store"})


async def join(request: Request) -> Response:
    """``POST /api/join/{code}`` ``{"name"}``: joins and returns the page's first token.

    Sets the device grant (an HttpOnly cookie per classroom) that keeps this device's
    user id across reloads and renews its tokens.
    """
    state = _state(request)
    code = request.path_params["code"]
    body = await json_body(request)
    if body is None:
        return error(400, "body must be a JSON object", "invalid")
    invite = await run(state.directory.invite, code)
    if invite is None:
        return _refusal("not-found")
    classroom = await run(state.directory.classroom, invite.classroom_id)
    if classroom is None or classroom.archived:
        return _refusal("archived")
    returning = grant_member(request, state.secret, classroom.id)
    # Before the join is recorded: a refused student does not use up the invite.
    refused = await _admission_refusal(state, classroom.id, returning, Role(invite.role))
    if refused is not None:
        return refused
    try:
        _, member = await run(state.directory.join, code, str(body.get("name") or ""), returning)
    except AccountError as exc:
        reason = str(exc)
        if reason == "name":
            return error(400, "Enter your name.", "invalid")
        return _refusal(reason)
    response = _token_response(state, classroom, Role(member.role), member.id, member.name)
    set_cookie(
        response,
        state.settings,
        GRANT_COOKIE + classroom.id,
        issue_grant(state.secret, classroom.id, member.id),
        GRANT_TTL,
    )
    return response


async def page_token(request: Request) -> Response:
    """``POST /api/classrooms/{C}/token``: a fresh short-lived access token for the page.

    From the session (the owner gets a tutor token, an admin an admin token) or from the
    device's join grant (a student or observer token, while the invite is not revoked,
    the member not removed and the classroom not archived).
    """
    state = _state(request)
    classroom_id = request.path_params["classroom"]
    who = await _who(request)
    if isinstance(who, Response):
        return who
    classroom = await run(state.directory.classroom, classroom_id)
    if who is not None and who.account is not None:
        account = who.account
        if account.is_admin or (classroom is not None and classroom.owner_id == account.id):
            if classroom is None:
                return _refusal("not-found")
            if classroom.archived:
                return _refusal("archived")
            role = (
                Role.ADMIN if account.is_admin and classroom.owner_id != account.id else Role.TUTOR
            )
            return _token_response(state, classroom, role, account.user_id, account.name)
    member_id = grant_member(request, state.secret, classroom_id)
    if member_id is None:
        if who is not None:
            return error(403, "This classroom belongs to another tutor.", "forbidden")
        return error(401, "Sign in, or open the invite link your tutor sent you.", "signin")
    if classroom is None:
        return _refusal("not-found")
    if classroom.archived:
        return _refusal("archived")
    member = await run(state.directory.member, member_id)
    if member is None or member.classroom_id != classroom_id:
        return _refusal("not-found")
    if member.removed_at is not None:
        return _refusal("removed")
    invite = await run(state.directory.invite, member.invite_code)
    if invite is None or invite.revoked_at is not None:
        return _refusal("revoked")
    refused = await _admission_refusal(state, classroom.id, member.id, Role(member.role))
    if refused is not None:
        return refused
    return _token_response(state, classroom, Role(member.role), member.id, member.name)


def _token_response(
    state: AppState, classroom: Classroom, role: Role, user_id: str, name: str
) -> Response:
    ttl = state.settings.page_token_ttl
    token = issue(
        state.secret, classroom=classroom.id, role=role, user_id=user_id, name=name, ttl=ttl
    )
    body = {
        "token": token,
        "classroom": {"id": classroom.id, "title": classroom.title},
        "role": role.value,
        "user": user_id,
        "name": name,
        "expires": int(time.time()) + ttl,
        "ttl": ttl,
    }
    return JSONResponse(body, headers={"Cache-Control": "no-store"})
