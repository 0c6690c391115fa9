"""``/api/classrooms/{C}/replay/*``: the tutor's read-only replay of their classroom's board.

Only whoever manages the classroom (its owner, an admin, or a tutor token for it) may
read it; nothing here writes (restoring is for admins, under ``/api/admin``).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from collab.ports import MAX_HISTORY_PAGE, DocumentName

from ..admin import Inspector
from ..state import AppState
from ..web import error
from .admin import BadInput, parse_time
from .classrooms import _managed


async def _board(request: Request) -> tuple[Inspector, DocumentName] | Response:
    found = await _managed(request, request.path_params["classroom"])
    if isinstance(found, Response):
        return found
    state: AppState = request.app.state.inkroom
    return Inspector(state), DocumentName(f"{found[1].id}/board")


async def history(request: Request) -> Response:
    """``GET .../replay/history?after=&limit=``: the board's log entries (no contents)."""
    found = await _board(request)
    if isinstance(found, Response):
        return found
    ins, name = found
    after, limit = request.query_params.get("after", "0"), request.query_params.get("limit", "100")
    if not after.isdigit() or not limit.isdigit() or not 1 <= int(limit) <= MAX_HISTORY_PAGE:
        return error(400, f"after and limit (1 to {MAX_HISTORY_PAGE}) are integers", "invalid")
    await ins.save_pending()
    page = await ins.store.history(name, after=int(after), limit=int(limit))
    entries = [
        {"seq": e.seq, "at": e.created_at.isoformat(), "author": e.author, "size": e.size}
        for e in page.entries
    ]
    return JSONResponse({"document": name, "entries": entries, "next_after": page.next_after})


async def state_at(request: Request) -> Response:
    """``GET .../replay/state?at=T``: the board at T as a Yjs update."""
    found = await _board(request)
    if isinstance(found, Response):
        return found
    ins, name = found
    try:
        at = parse_time(request.query_params.get("at", ""), "at")
    except BadInput as exc:
        return error(400, str(exc), "invalid")
    past = await ins.state_at(name, at)
    return Response(past.update, media_type="application/octet-stream")


def replay_routes() -> list[Route]:
    return [
        Route("/api/classrooms/{classroom}/replay/history", history),
        Route("/api/classrooms/{classroom}/replay/state", state_at),
    ]
