"""``/api/check-reports``: the ``/check`` page sends its report here, and the tutor of the
classroom and admins read the recent ones (docs/sfu.md).

- ``POST /api/check-reports`` with the classroom token (``Authorization: Bearer``) or a
  signed-in session: stores the report (server/check_reports.py), at most
  ``POSTS_PER_HOUR`` per user (server/check_reports.py); 201 with its id.
- ``GET /api/classrooms/{classroom}/check-reports`` with a tutor's (or admin's) token for
  that classroom: that classroom's recent reports.
- ``GET /api/admin/check-reports[?classroom=C]``: every classroom's, for admins, audited
  like every admin call.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..admin import Inspector
from ..check_reports import BadReport, judge
from ..errors import InvalidToken
from ..state import AppState
from ..web import Principal, client_address, error, principal, run
from .admin import Note, admin

STAFF = frozenset({"tutor", "admin"})


async def post_report(request: Request) -> Response:
    state: AppState = request.app.state.inkroom
    try:
        who = await principal(request, state.directory, state.secret)
    except InvalidToken as exc:
        return error(401, str(exc), "signin")
    if who is None:
        return error(401, "open the check from your classroom link to send the report", "signin")
    if who.claims is not None:
        user, role, classroom = who.claims.user_id, who.claims.role.value, who.claims.classroom
    else:
        assert who.account is not None
        user, role, classroom = who.account.user_id, who.account.role, None
    wait = state.check_report_posts.retry_after(user)
    if wait is not None:
        limited = error(429, "too many reports; try again later", "rate")
        limited.headers["Retry-After"] = str(wait)
        return limited
    body = await request.body()
    try:
        judged = judge(body)
    except BadReport as exc:
        return error(400, str(exc), "bad-report")
    state.check_report_posts.hit(user)
    report_id = await run(
        state.check_reports.add,
        judged,
        classroom=classroom,
        user_id=user,
        role=role,
        user_agent=request.headers.get("user-agent", ""),
        address=client_address(request),
    )
    return JSONResponse({"id": report_id}, status_code=201)


def _limit(request: Request) -> int:
    try:
        return int(request.query_params.get("limit", "50"))
    except ValueError:
        return 50


async def classroom_reports(request: Request) -> Response:
    state: AppState = request.app.state.inkroom
    classroom = str(request.path_params["classroom"])
    try:
        who = await principal(request, state.directory, state.secret)
    except InvalidToken as exc:
        return error(401, str(exc), "signin")
    if not _staff_of(who, classroom):
        return error(403, "the classroom's tutor and admins only", "forbidden")
    reports = await run(state.check_reports.recent, classroom=classroom, limit=_limit(request))
    return JSONResponse({"reports": reports})


def _staff_of(who: Principal | None, classroom: str) -> bool:
    if who is None:
        return False
    if who.is_admin:
        return True
    claims = who.claims
    return claims is not None and claims.classroom == classroom and claims.role.value in STAFF


@admin("check_reports")
async def admin_reports(request: Request, _: Inspector, __: Principal, note: Note) -> Response:
    state: AppState = request.app.state.inkroom
    classroom = request.query_params.get("classroom")
    note.target = classroom
    reports = await run(state.check_reports.recent, classroom=classroom, limit=_limit(request))
    return JSONResponse({"reports": reports})


def check_report_routes() -> list[Route]:
    return [
        Route("/api/check-reports", post_report, methods=["POST"]),
        Route("/api/classrooms/{classroom}/check-reports", classroom_reports),
        Route("/api/admin/check-reports", admin_reports),
    ]
