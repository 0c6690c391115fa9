"""Classroom HTTP endpoints: invite links minted by the classroom's tutor, and the SPA shell."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response

from ..auth import Role, authorize, issue, verify
from ..errors import Forbidden, ServerError
from ..state import AppState

MAX_INVITE_TTL = 7 * 24 * 3600


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
    try:
        body = await request.json()
    except ValueError:
        return JSONResponse({"error": "body must be JSON"}, status_code=400)
    if not isinstance(body, dict):
        return JSONResponse({"error": "body must be a JSON object"}, status_code=400)
    role_name = body.get("role", "student")
    if role_name not in (Role.STUDENT.value, Role.OBSERVER.value):
        return JSONResponse({"error": "role must be student or observer"}, status_code=400)
    name = str(body.get("name") or "")[:80]
    ttl = body.get("ttl", 4 * 3600)
    if not isinstance(ttl, int) or not 0 < ttl <= MAX_INVITE_TTL:
        return JSONResponse({"error": f"ttl must be 1..{MAX_INVITE_TTL}"}, status_code=400)
    user_id = str(body.get("user") or f"{role_name}-{_short_id()}")[:64]
    invite = issue(
        state.secret, classroom=classroom, role=Role(role_name), user_id=user_id, name=name, ttl=ttl
    )
    return JSONResponse({"token": invite, "url": f"/c/{classroom}?token={invite}"}, status_code=201)


def _short_id() -> str:
    return secrets.token_hex(4)


def spa_shell(static_dir: Path) -> Callable[[Request], Awaitable[Response]]:
    index = static_dir / "index.html"

    async def shell(request: Request) -> Response:
        if not index.is_file():
            return JSONResponse({"error": "frontend not built"}, status_code=404)
        return FileResponse(index, headers={"Cache-Control": "no-cache"})

    return shell
