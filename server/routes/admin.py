"""``/api/admin/*``: the admin inspector's HTTP API (admins only, every call audited).

Every route goes through :func:`admin`: it writes the audit row (who, what, when, from
where) *before* the handler runs, refuses anyone but an admin (401 anonymous, 403
otherwise, both audited too), and completes the row with the status. If the audit log
cannot be written, nothing runs (503).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from collab.content import from_update, shared_paths, to_data
from collab.errors import BusUnavailable
from collab.ports import MAX_HISTORY_PAGE, DocumentName

from .. import cluster
from ..admin import Inspector
from ..admin_openapi import SPEC
from ..auth import CLASSROOM_ID as _CLASSROOM
from ..auth import Claims, Role, authorize
from ..errors import Forbidden, InvalidToken
from ..state import AppState
from ..web import Principal, client_address, error, json_body, principal, run

log = logging.getLogger("inkroom.server.admin")
BINARY = "application/octet-stream"


@dataclass
class Note:
    """What the handler tells the audit row about the call."""

    target: str | None = None
    detail: str | None = None


Handler = Callable[[Request, Inspector, Principal, Note], Awaitable[Response]]
Endpoint = Callable[[Request], Awaitable[Response]]


def actor_of(who: Principal | None) -> str:
    if who is None:
        return "anonymous"
    if who.account is not None:
        return f"{who.account.user_id}:{who.account.email}:{who.account.role}"
    assert who.claims is not None
    return f"token:{who.claims.user_id}:{who.claims.role.value}"


def admin(action: str) -> Callable[[Handler], Endpoint]:
    def wrap(handler: Handler) -> Endpoint:
        async def endpoint(request: Request) -> Response:
            state: AppState = request.app.state.inkroom
            who: Principal | None = None
            refused: Response | None = None
            try:
                who = await principal(request, state.directory, state.secret)
            except InvalidToken as exc:
                refused = error(401, str(exc), "signin")
            if refused is None and who is None:
                refused = error(401, "sign in as an administrator", "signin")
            elif refused is None and who is not None and not who.is_admin:
                refused = error(403, "administrators only", "forbidden")
            if refused is not None:
                address = client_address(request)
                wait = state.admin_refusals.retry_after(address)
                if wait is not None:
                    # Bounded: refused calls past the rate are logged, not stored.
                    log.warning(
                        "admin calls refused too often",
                        extra={"address": address, "action": action},
                    )
                    limited = error(429, "too many refused calls; wait", "rate")
                    limited.headers["Retry-After"] = str(wait)
                    return limited
                state.admin_refusals.hit(address)
            try:
                entry = await run(
                    state.audit.begin,
                    actor=actor_of(who),
                    method=request.method,
                    path=request.url.path + ("?" + request.url.query if request.url.query else ""),
                    action=action,
                    address=client_address(request),
                    user_agent=request.headers.get("user-agent", ""),
                )
            except Exception:
                log.exception("audit log unavailable", extra={"action": action})
                return error(503, "the audit log is unavailable; nothing was done", "audit")
            note = Note(target=request.path_params.get("name"))
            status = 500
            try:
                if refused is not None:
                    response = refused
                else:
                    assert who is not None
                    response = await handler(request, Inspector(state), who, note)
                status = response.status_code
                return response
            finally:
                await run(state.audit.finish, entry, status, target=note.target, detail=note.detail)

        endpoint.__name__ = handler.__name__
        endpoint.__doc__ = handler.__doc__
        return endpoint

    return wrap


# -- input ---------------------------------------------------------------------------


class BadInput(ValueError):
    pass


def _name(request: Request) -> DocumentName:
    name = str(request.path_params["name"])
    try:
        authorize(Claims("admin", "", "admin", Role.ADMIN, 0), name)
    except Forbidden as exc:
        raise BadInput(f"invalid document name {name[:80]!r}") from exc
    return DocumentName(name)


def _time(request: Request, key: str, *, required: bool = False) -> datetime | None:
    raw = request.query_params.get(key)
    if raw is None or raw == "":
        if required:
            raise BadInput(f"{key} is required (ISO 8601, e.g. 2026-03-03T09:00:00Z)")
        return None
    return parse_time(raw, key)


def parse_time(raw: str, key: str) -> datetime:
    try:
        return datetime.fromisoformat(raw)
    except ValueError as exc:
        raise BadInput(f"{key} must be an ISO 8601 time, not {raw[:40]!r}") from exc


def _int(request: Request, key: str, default: int, lo: int, hi: int) -> int:
    raw = request.query_params.get(key)
    if raw is None:
        return default
    if not raw.isdigit() or not lo <= int(raw) <= hi:
        raise BadInput(f"{key} must be an integer from {lo} to {hi}")
    return int(raw)


def guarded(handler: Handler) -> Handler:
    """Bad input answers 400 with the exact message."""

    async def run_it(request: Request, ins: Inspector, who: Principal, note: Note) -> Response:
        try:
            return await handler(request, ins, who, note)
        except BadInput as exc:
            note.detail = str(exc)
            return error(400, str(exc), "invalid")
        except BusUnavailable as exc:  # too many questions to the other nodes in flight
            note.detail = str(exc)
            return error(503, f"{exc}; try again", "busy")

    run_it.__name__ = handler.__name__
    return run_it


def _binary(data: bytes, filename: str) -> Response:
    safe = filename.replace("/", "_")
    return Response(
        data,
        media_type=BINARY,
        headers={"Content-Disposition": f'attachment; filename="{safe}"'},
    )


# -- handlers ------------------------------------------------------------------------


@admin("openapi")
async def openapi(request: Request, ins: Inspector, who: Principal, note: Note) -> Response:
    return JSONResponse(SPEC)


@admin("rooms")
@guarded
async def rooms(request: Request, ins: Inspector, who: Principal, note: Note) -> Response:
    return JSONResponse(await ins.rooms(), headers={"Cache-Control": "no-store"})


@admin("users")
async def users(request: Request, ins: Inspector, who: Principal, note: Note) -> Response:
    state: AppState = request.app.state.inkroom
    accounts = await run(state.directory.accounts)
    return JSONResponse({"users": [a.public() for a in accounts]})


@admin("classrooms")
async def classrooms(request: Request, ins: Inspector, who: Principal, note: Note) -> Response:
    state: AppState = request.app.state.inkroom
    rows = await run(state.directory.classrooms)
    return JSONResponse({"classrooms": [c.public() for c in rows]})


@admin("audit")
@guarded
async def audit(request: Request, ins: Inspector, who: Principal, note: Note) -> Response:
    state: AppState = request.app.state.inkroom
    before = request.query_params.get("before")
    if before is not None and not before.isdigit():
        raise BadInput("before must be an audit entry id")
    limit = _int(request, "limit", 100, 1, 500)
    rows = await run(state.audit.entries, before=int(before) if before else None, limit=limit)
    return JSONResponse({"entries": [r.public() for r in rows]})


@admin("document.read")
@guarded
async def document(request: Request, ins: Inspector, who: Principal, note: Note) -> Response:
    return JSONResponse(await ins.document(_name(request)))


@admin("document.history")
@guarded
async def history(request: Request, ins: Inspector, who: Principal, note: Note) -> Response:
    name = _name(request)
    after = _int(request, "after", 0, 0, 1 << 62)
    limit = _int(request, "limit", 100, 1, MAX_HISTORY_PAGE)
    since, until = _time(request, "since"), _time(request, "until")
    author = request.query_params.get("author") or None
    await ins.save_pending()
    page = await ins.store.history(
        name, after=after, limit=limit, author=author, since=since, until=until
    )
    return JSONResponse(
        {
            "document": name,
            "entries": [
                {
                    "seq": e.seq,
                    "at": e.created_at.isoformat(),
                    "author": e.author,
                    "size": e.size,
                }
                for e in page.entries
            ],
            "next_after": page.next_after,
        }
    )


@admin("document.contributions")
@guarded
async def contributions(request: Request, ins: Inspector, who: Principal, note: Note) -> Response:
    name = _name(request)
    since, until = _time(request, "since"), _time(request, "until")
    await ins.save_pending()
    rows = await ins.store.contributions(name, since=since, until=until)
    return JSONResponse(
        {
            "document": name,
            "authors": [
                {
                    "author": c.author,
                    "updates": c.updates,
                    "bytes": c.bytes,
                    "first_at": c.first_at.isoformat(),
                    "last_at": c.last_at.isoformat(),
                }
                for c in rows
            ],
        }
    )


@admin("document.state_at")
@guarded
async def state_at(request: Request, ins: Inspector, who: Principal, note: Note) -> Response:
    name = _name(request)
    at = _time(request, "at", required=True)
    assert at is not None
    note.detail = f"at={at.isoformat()}"
    past = await ins.state_at(name, at)
    if request.query_params.get("format") == "binary":
        return _binary(past.update, f"{name}@{at.isoformat()}.yjs")
    return JSONResponse(
        {
            "document": name,
            "at": at.isoformat(),
            "seq": past.seq,
            "size": len(past.update),
            "content": to_data(from_update(past.update)),
        }
    )


@admin("document.export")
@guarded
async def export(request: Request, ins: Inspector, who: Principal, note: Note) -> Response:
    name = _name(request)
    doc, _ = await ins.current(name)
    if request.query_params.get("format") == "json":
        return JSONResponse(
            {"document": name, "content": to_data(doc), "shared": shared_paths(doc)}
        )
    return _binary(doc.get_update(), f"{name}.yjs")


@admin("document.import")
@guarded
async def import_(request: Request, ins: Inspector, who: Principal, note: Note) -> Response:
    name = _name(request)
    state: AppState = request.app.state.inkroom
    limit = state.settings.limits().max_document_bytes
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return error(413, f"an import is at most {limit} bytes", "too_large")
    note.detail = f"{len(body)} bytes"
    if request.headers.get("content-type", "").split(";")[0].strip() == "application/json":
        try:
            data = json.loads(body)
        except (ValueError, RecursionError) as exc:
            raise BadInput(f"the body is not JSON: {str(exc)[:120]}") from exc
        try:
            change = await ins.import_data(name, data)
        except ValueError as exc:
            raise BadInput(f"nothing imported: {exc}") from exc
        note.detail += " json"
        return JSONResponse(
            {
                "document": name,
                "imported_bytes": len(body),
                "format": "json",
                "change_bytes": change,
            }
        )
    try:
        grew = await ins.import_update(name, body)
    except ValueError as exc:
        raise BadInput("the body is not a Yjs update") from exc
    return JSONResponse({"document": name, "imported_bytes": len(body), "grew_by": grew})


@admin("document.restore")
@guarded
async def restore(request: Request, ins: Inspector, who: Principal, note: Note) -> Response:
    name = _name(request)
    body = await json_body(request)
    if body is None or not isinstance(body.get("at"), str):
        raise BadInput('body must be {"at": "ISO 8601 time"}')
    at = parse_time(body["at"], "at")
    note.detail = f"at={at.isoformat()}"
    return JSONResponse({"document": name, **await ins.restore(name, at)})


@admin("document.delete")
@guarded
async def delete(request: Request, ins: Inspector, who: Principal, note: Note) -> Response:
    name = _name(request)
    ended = await ins.delete(name, actor_of(who))
    return JSONResponse({"document": name, "deleted": True, "ended": ended})


@admin("document.undelete")
@guarded
async def undelete(request: Request, ins: Inspector, who: Principal, note: Note) -> Response:
    name = _name(request)
    await run(ins.set_deleted, name, False, actor_of(who))
    return JSONResponse({"document": name, "deleted": False})


async def _target(request: Request, note: Note) -> tuple[str, str | None, dict[str, Any]]:
    body = await json_body(request)
    if body is None or not isinstance(body.get("user_id"), str) or not body["user_id"]:
        raise BadInput('body must be {"user_id": "...", "document": optional}')
    document = body.get("document")
    if document is not None and not isinstance(document, str):
        raise BadInput("document must be a string")
    note.target = f"{body['user_id']}@{document or '*'}"
    return body["user_id"], document, body


@admin("connection.end")
@guarded
async def end_connection(request: Request, ins: Inspector, who: Principal, note: Note) -> Response:
    user, document, _ = await _target(request, note)
    result = await ins.end(user, document)
    note.detail = f"ended={result['ended']} missing={','.join(result['nodes']['missing'])}"[:200]
    return JSONResponse(result)


def _classroom(raw: object) -> str:
    if not isinstance(raw, str) or not _CLASSROOM.fullmatch(raw):
        raise BadInput("classroom must be a classroom id")
    return raw


@admin("connection.role")
@guarded
async def set_role(request: Request, ins: Inspector, who: Principal, note: Note) -> Response:
    """Lowers (or, with ``"role": null``, restores) a user's role in a classroom, for as
    long as the override stays; the classroom is ``classroom``, else ``document``'s, else
    every classroom the user is connected to now (on any node)."""
    user, document, body = await _target(request, note)
    role = body.get("role")
    if role is not None and not isinstance(role, str):
        raise BadInput("role must be a string, or null to restore")
    listing = await ins.rooms()
    if body.get("classroom") is not None:
        classrooms = {_classroom(body["classroom"])}
    elif document is not None:
        classrooms = {_classroom(document.split("/", 1)[0])}
    else:
        classrooms = cluster.user_classrooms(listing, user)
        if not classrooms:
            raise BadInput("the user has no open connection: name a classroom")
    try:
        for classroom in sorted(classrooms):
            await ins.set_role(user, role, classroom)
    except ValueError as exc:
        raise BadInput(str(exc)) from exc
    note.detail = f"role={role} classrooms={','.join(sorted(classrooms))}"[:200]
    live = [
        c
        for room in listing["rooms"]
        if room["name"].split("/", 1)[0] in classrooms
        and (document is None or room["name"] == document)
        for c in room["connections"]
        if c["user_id"] == user
    ]
    return JSONResponse(
        {
            "changed": len(live),
            "role": role,
            "classrooms": sorted(classrooms),
            "nodes": listing["nodes"],
        }
    )


@admin("classroom.roles")
@guarded
async def roles(request: Request, ins: Inspector, who: Principal, note: Note) -> Response:
    classroom = _classroom(request.path_params["classroom"])
    note.target = classroom
    return JSONResponse({"classroom": classroom, "overrides": await ins.roles(classroom)})


@admin("classroom.attendance")
@guarded
async def attendance(request: Request, ins: Inspector, who: Principal, note: Note) -> Response:
    classroom = str(request.path_params["classroom"])
    note.target = classroom
    since, until = _time(request, "since"), _time(request, "until")
    await request.app.state.inkroom.connections.flush_attendance()  # rows written in groups
    return JSONResponse(await run(ins.attendance, classroom, since, until))


@admin("billing.customer")
async def billing_customer(
    request: Request, ins: Inspector, who: Principal, note: Note
) -> Response:
    """Billing's admin timeline, audited like every admin call (billing checks its own
    token rule after this one)."""
    from .billing import admin_customer

    note.target = request.path_params.get("stripe_customer_id")
    return await admin_customer(request)


def admin_routes() -> list[Route]:
    p = "/api/admin"
    return [
        Route(f"{p}/openapi.json", openapi),
        Route(f"{p}/rooms", rooms),
        Route(f"{p}/users", users),
        Route(f"{p}/classrooms", classrooms),
        Route(f"{p}/audit", audit),
        Route(p + "/classrooms/{classroom}/attendance", attendance),
        Route(p + "/classrooms/{classroom}/roles", roles),
        Route(p + "/documents/{name:path}", document),
        Route(p + "/documents/{name:path}", delete, methods=["DELETE"]),
        Route(p + "/undelete/{name:path}", undelete, methods=["POST"]),
        Route(p + "/history/{name:path}", history),
        Route(p + "/contributions/{name:path}", contributions),
        Route(p + "/state/{name:path}", state_at),
        Route(p + "/export/{name:path}", export),
        Route(p + "/import/{name:path}", import_, methods=["POST"]),
        Route(p + "/restore/{name:path}", restore, methods=["POST"]),
        Route(f"{p}/connections/end", end_connection, methods=["POST"]),
        Route(f"{p}/connections/role", set_role, methods=["POST"]),
        # Ahead of billing's own route for the same path, so that one is audited too.
        Route(p + "/billing/customers/{stripe_customer_id}", billing_customer),
    ]
