"""``POST /api/control``: staff end connections on every node (through the bus)."""

from __future__ import annotations

import json

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from collab.errors import BusUnavailable
from collab.ports import ControlCall, ControlKind

from ..auth import Role, verify
from ..errors import Forbidden, ServerError
from ..state import AppState

MAX_BODY = 2048


async def publish_control(request: Request) -> Response:
    """Body: ``{"kind": "end_user"|"end_classroom"|"access_revoked", "user": str?,
    "classroom": str?, "reason": str?}``. An admin may target anyone; a tutor only their
    own classroom (``classroom`` is then required and must be theirs)."""
    state: AppState = request.app.state.inkroom
    header = request.headers.get("authorization", "")
    token = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else None
    raw = await request.body()
    if len(raw) > MAX_BODY:
        return JSONResponse({"error": f"body over {MAX_BODY} bytes"}, status_code=413)
    try:
        claims = verify(state.secret, token)
        call = _call(json.loads(raw or b"{}"))
        if claims.role is not Role.ADMIN and (
            claims.role is not Role.TUTOR or call.classroom != claims.classroom
        ):
            raise Forbidden("only an admin, or the classroom's tutor, can end connections")
    except ServerError as exc:
        return JSONResponse({"error": str(exc)}, status_code=exc.status_code)
    except ValueError as exc:
        return JSONResponse({"error": str(exc)}, status_code=400)
    try:
        await state.registry.bus.publish_control(call)
    except BusUnavailable as exc:
        return JSONResponse({"error": str(exc)}, status_code=503)
    return JSONResponse({"status": "published", "kind": call.kind.value}, status_code=202)


def _call(body: object) -> ControlCall:
    """Raises ``ValueError`` with the exact fault."""
    if not isinstance(body, dict):
        raise ValueError("body must be a JSON object")  # noqa: TRY004 - it is a 400
    try:
        kind = ControlKind(body.get("kind"))
    except ValueError:
        raise ValueError(f"kind must be one of {[k.value for k in ControlKind]}") from None
    fields: dict[str, str | None] = {}
    for key, limit in (("user", 128), ("classroom", 128), ("reason", 120)):
        value = body.get(key)
        if value is not None and (not isinstance(value, str) or not 0 < len(value) <= limit):
            raise ValueError(f"{key} must be a string of 1..{limit} characters")
        fields[key] = value
    if kind is ControlKind.CLASSROOM_ARCHIVED:
        # Sent by archiving (PATCH /api/classrooms/{C}), which also refuses new joins.
        raise ValueError("classroom_archived is sent by archiving the classroom")
    if kind is ControlKind.END_USER and fields["user"] is None:
        raise ValueError("end_user needs a user")
    if kind is ControlKind.END_CLASSROOM and fields["classroom"] is None:
        raise ValueError("end_classroom needs a classroom")
    if fields["user"] is None and fields["classroom"] is None:
        raise ValueError("name a user, a classroom, or both")
    return ControlCall(kind, fields["user"], fields["classroom"], fields["reason"] or "")
