"""Classroom HTTP endpoints: invite links minted by the classroom's tutor, and the SPA shell."""

from __future__ import annotations

import json
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response

from ..auth import Role, authorize, issue, verify
from ..errors import Forbidden, ServerError
from ..state import AppState

MAX_INVITE_TTL = 7 * 24 * 3600
MAX_BODY = 4096


def _error(exc: ServerError) -> Response:
    return JSONResponse({"error": str(exc)}, status_code=exc.status_code)


async def create_invite(request: Request) -> Response:
    """``POST /api/classrooms/{classroom}/invites``: a tutor (or admin) mints a join link.

    Body: ``{"role": "student"|"observer", "name": str, "ttl": seconds}``.
    """
    state: AppState = request.app.state.inkroom
    classroom = request.path_params["classroom"]
    header = request.headers.get("authorization", "")
    token = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else None
    try:
        claims = verify(state.secret, token)
        authorize(claims, classroom)
        if claims.role not in (Role.TUTOR, Role.ADMIN):
            raise Forbidden("only the classroom's tutor can invite")
    except ServerError as exc:
        return _error(exc)
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_BODY:
            return JSONResponse({"error": f"body over {MAX_BODY} bytes"}, status_code=413)
    try:
        body = json.loads(raw or b"{}")
    except ValueError:
        return JSONResponse({"error": "body must be JSON"}, status_code=400)
    if not isinstance(body, dict):
        return JSONResponse({"error": "body must be a JSON object"}, status_code=400)
    role_name = body.get("role", "student")
    if role_name not in (Role.STUDENT.value, Role.OBSERVER.value):
        return JSONResponse({"error": "role must be student or observer"}, status_code=400)
    name = body.get("name", "")
    if not isinstance(name, str) or len(name) > 80:
        return JSONResponse({"error": "name must be a string of at most 80"}, status_code=400)
    ttl = body.get("ttl", 4 * 3600)
    if isinstance(ttl, bool) or not isinstance(ttl, int) or not 0 < ttl <= MAX_INVITE_TTL:
        return JSONResponse(
            {"error": f"ttl must be an integer 1..{MAX_INVITE_TTL}"}, status_code=400
        )
    if "user" in body:
        # The server names users: an invite that chose its own id could take another
        # user's identity (their hand, their chat, their strokes).
        return JSONResponse({"error": "user ids are assigned by the server"}, status_code=400)
    user_id = f"{role_name}-{_short_id()}"
    invite = issue(
        state.secret, classroom=classroom, role=Role(role_name), user_id=user_id, name=name, ttl=ttl
    )
    return JSONResponse({"token": invite, "url": f"/c/{classroom}?token={invite}"}, status_code=201)


def _short_id() -> str:
    return secrets.token_hex(8)


def spa_shell(static_dir: Path) -> Callable[[Request], Awaitable[Response]]:
    index = static_dir / "index.html"

    async def shell(request: Request) -> Response:
        if not index.is_file():
            return JSONResponse({"error": "frontend not built"}, status_code=404)
        return FileResponse(index, headers={"Cache-Control": "no-cache"})

    return shell
