"""The OpenAPI 3.1 description of ``/api/admin/*`` (served at ``/api/admin/openapi.json``)."""

from __future__ import annotations

from typing import Any

_NAME = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
_TIME = {"type": "string", "format": "date-time"}


def _q(name: str, schema: dict[str, Any], required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "schema": schema}


def _op(summary: str, params: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
    responses: dict[str, Any] = {
        "200": {"description": "OK"},
        "400": {"description": "Bad input: `error` says what"},
        "401": {"description": "Not signed in, or an invalid bearer credential"},
        "403": {"description": "Not an administrator"},
        "503": {"description": "The audit log is unavailable: nothing was done"},
    }
    return {"summary": summary, "parameters": params or [], "responses": responses, **extra}


_JSON_BODY = {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}}
_TARGET = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["user_id"],
                "properties": {
                    "user_id": {"type": "string"},
                    "document": {"type": "string"},
                    "classroom": {"type": "string"},
                    "role": {"enum": ["student", "observer", None]},
                },
            }
        }
    },
}
_WINDOW = [_q("since", _TIME), _q("until", _TIME)]

SPEC: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "Inkroom admin inspector",
        "version": "1",
        "description": "Admin role only (session cookie or `Authorization: Bearer`). Every "
        "call, refused or not, is written to the audit log before it runs. See docs/admin.md.",
    },
    "components": {
        "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer"},
            "session": {"type": "apiKey", "in": "cookie", "name": "inkroom_session"},
        }
    },
    "security": [{"bearer": []}, {"session": []}],
    "paths": {
        "/api/admin/rooms": {
            "get": _op(
                "Live rooms of every node with their connections; `nodes.missing` names the "
                "nodes that did not answer within 2 s"
            )
        },
        "/api/admin/users": {"get": _op("Accounts")},
        "/api/admin/classrooms": {"get": _op("Classrooms")},
        "/api/admin/audit": {
            "get": _op(
                "The audit log, newest first",
                [_q("before", {"type": "integer"}), _q("limit", {"type": "integer"})],
            )
        },
        "/api/admin/classrooms/{classroom}/attendance": {
            "get": _op(
                "Who was present, from when to when, from which device",
                [{**_NAME, "name": "classroom"}, *_WINDOW],
            )
        },
        "/api/admin/classrooms/{classroom}/roles": {
            "get": _op(
                "Role overrides in force in the classroom (user id -> role)",
                [{**_NAME, "name": "classroom"}],
            )
        },
        "/api/admin/documents/{name}": {
            "get": _op("The document now: content as plain data, size, state vector", [_NAME]),
            "delete": _op("Hide the document (log kept); open connections end with 4404", [_NAME]),
        },
        "/api/admin/undelete/{name}": {"post": _op("Bring a deleted document back", [_NAME])},
        "/api/admin/history/{name}": {
            "get": _op(
                "Logged updates by sequence: seq, time, author, size",
                [
                    _NAME,
                    _q("after", {"type": "integer", "minimum": 0}),
                    _q("limit", {"type": "integer", "minimum": 1, "maximum": 1000}),
                    _q("author", {"type": "string"}),
                    *_WINDOW,
                ],
            )
        },
        "/api/admin/contributions/{name}": {
            "get": _op("Updates and bytes per author", [_NAME, *_WINDOW])
        },
        "/api/admin/state/{name}": {
            "get": _op(
                "The document as it was at a time (snapshot plus log)",
                [_NAME, _q("at", _TIME, True), _q("format", {"enum": ["json", "binary"]})],
            )
        },
        "/api/admin/export/{name}": {
            "get": _op(
                "The document now as a Yjs update (default) or JSON",
                [_NAME, _q("format", {"enum": ["binary", "json"]})],
            )
        },
        "/api/admin/import/{name}": {
            "post": _op(
                "Merge a Yjs update into the document (a server write), or make its content "
                "a JSON export's (`application/json`: `content`, `shared`), as one forward "
                "change",
                [_NAME],
                requestBody={
                    "required": True,
                    "content": {
                        "application/octet-stream": {},
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["content"],
                                "properties": {
                                    "content": {"type": "object"},
                                    "shared": {"type": "array", "items": {"type": "array"}},
                                },
                            }
                        },
                    },
                },
            )
        },
        "/api/admin/restore/{name}": {
            "post": _op(
                "Restore the content at a time, as a new forward change every client receives",
                [_NAME],
                requestBody=_JSON_BODY,
            )
        },
        "/api/admin/connections/end": {
            "post": _op("End a user's connections (4403) on every node", requestBody=_TARGET)
        },
        "/api/admin/billing/customers/{stripe_customer_id}": {
            "get": _op(
                "Billing state, timeline and attendance of a Stripe customer (docs/billing.md)",
                [{**_NAME, "name": "stripe_customer_id"}],
            )
        },
        "/api/admin/connections/role": {
            "post": _op(
                "Lower a user's role in a classroom (lasts across reconnects, every node), "
                "or restore it with `role: null`",
                requestBody=_TARGET,
            )
        },
    },
}
