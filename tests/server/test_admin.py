"""The admin API over HTTP: who may call it, the audit log, documents, attendance."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pycrdt import Array, Doc, Map, Text
from sqlalchemy import func, select
from starlette.routing import Route
from starlette.testclient import TestClient

from collab.content import from_update, to_data
from collab.protocol import PermissionDenied, SyncUpdate, decode
from server.app import create_app
from server.audit import audit_table
from server.auth import Role, issue
from server.routes.admin import admin_routes
from server.settings import Settings
from server.state import AppState
from server.web import Attempts

SECRET = "admin-test-secret-" + "0123456789abcdef" * 4
PASSWORD = "correct horse battery"


def token(role: Role, user: str, classroom: str = "c1") -> str:
    return issue(SECRET, classroom=classroom, role=role, user_id=user, name=user.title())


def bearer(value: str) -> dict[str, str]:
    return {"authorization": f"Bearer {value}"}


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(data_dir=tmp_path, secret=SECRET)
    with TestClient(create_app(settings), headers={"user-agent": "pytest-admin"}) as c:
        yield c


def state(client: TestClient) -> AppState:
    s: AppState = client.app.state.inkroom  # type: ignore[attr-defined]
    return s


def session(client: TestClient, role: str, email: str) -> str:
    directory = state(client).directory
    account = directory.create_account(email, PASSWORD, role=role, name=email.split("@")[0])
    return directory.open_session(account)


def audit_rows(client: TestClient) -> list[Any]:
    with state(client).engine.connect() as conn:
        return list(conn.execute(select(audit_table).order_by(audit_table.c.id)).all())


def calls() -> list[tuple[str, str]]:
    """Every admin route and method, with sample path parameters."""
    out = []
    for route in admin_routes():
        assert isinstance(route, Route)
        path = route.path.replace("{name:path}", "c1/board").replace("{classroom}", "c1")
        path = path.replace("{stripe_customer_id}", "cus_1")
        for method in sorted((route.methods or set()) - {"HEAD"}):
            out.append((method, path))
    return out


def test_every_admin_route_refuses_non_admins_and_audits_it(client: TestClient) -> None:
    credentials = {
        "tutor-token": token(Role.TUTOR, "t1"),
        "student-token": token(Role.STUDENT, "s1"),
        "observer-token": token(Role.OBSERVER, "o1"),
        "tutor-session": session(client, "tutor", "tutor@example.org"),
    }
    routes = calls()
    assert len(routes) >= 17
    made = 0
    for label, credential in credentials.items():
        for method, path in routes:
            r = client.request(method, path, headers=bearer(credential), json={})
            assert r.status_code == 403, (label, method, path, r.text)
            assert r.json()["reason"] == "forbidden"
            made += 1
    for method, path in routes:
        r = client.request(method, path, json={})
        assert r.status_code == 401, (method, path)
        made += 1
    rows = audit_rows(client)
    assert len(rows) == made
    assert {r.status for r in rows} == {401, 403}
    assert {r.actor for r in rows} >= {
        "token:t1:tutor",
        "token:s1:student",
        "token:o1:observer",
        "anonymous",
    }
    assert all(r.address and r.user_agent == "pytest-admin" and r.at for r in rows)
    # Nothing changed: the refused restore and delete did nothing.
    assert state(client).registry.rooms == {}


def test_every_admin_call_lands_in_the_audit_log(client: TestClient) -> None:
    admin = bearer(session(client, "admin", "root@example.org"))
    jwt_admin = bearer(token(Role.ADMIN, "ops", classroom="admin"))
    made: list[tuple[str, str, int]] = []
    for headers in (admin, jwt_admin):
        for path in ("/api/admin/rooms", "/api/admin/documents/c1/board", "/api/admin/audit"):
            r = client.get(path, headers=headers)
            assert r.status_code == 200, r.text
            made.append(("GET", path, 200))
    billing = client.get("/api/admin/billing/customers/cus_1", headers=jwt_admin)
    assert billing.status_code == 404  # billing is off here; the call is audited anyway
    made.append(("GET", "/api/admin/billing/customers/cus_1", 404))
    bad = client.get("/api/admin/history/c1/board?limit=0", headers=admin)
    assert bad.status_code == 400
    assert bad.json()["error"] == "limit must be an integer from 1 to 1000"
    made.append(("GET", "/api/admin/history/c1/board?limit=0", 400))
    rows = audit_rows(client)
    assert [(r.method, r.path, r.status) for r in rows] == made
    assert rows[0].actor == "acct-1:root@example.org:admin"
    assert rows[3].actor == "token:ops:admin"
    assert rows[1].action == "document.read"
    assert rows[1].target == "c1/board"
    listed = client.get("/api/admin/audit?limit=2", headers=admin).json()["entries"]
    # The listing call is itself written down before it runs (its status still pending).
    assert [(e["path"], e["status"]) for e in listed] == [
        ("/api/admin/audit?limit=2", 0),
        (made[-1][1], 400),
    ]


def test_openapi_lists_every_route(client: TestClient) -> None:
    admin = bearer(token(Role.ADMIN, "ops", classroom="admin"))
    spec = client.get("/api/admin/openapi.json", headers=admin).json()
    documented = {(m.upper(), _sample(p)) for p, ops in spec["paths"].items() for m in ops}
    assert set(calls()) - {("GET", "/api/admin/openapi.json")} <= documented


def _write(ws: Any, key: str, value: int, root: str = "map") -> None:
    doc: Doc[Any] = Doc()
    updates: list[bytes] = []
    doc.observe(lambda e: updates.append(e.update))
    doc.get(root, type=Map)[key] = value
    ws.send_bytes(bytes(SyncUpdate(updates[0])))


def test_document_as_data_history_state_at_export_import(client: TestClient) -> None:
    admin = bearer(token(Role.ADMIN, "ops", classroom="admin"))
    with client.websocket_connect(f"/ws/c1/notes?token={token(Role.TUTOR, 'ada')}") as ws:
        ws.receive_bytes()  # SyncStep1
        _write(ws, "a", 1)
        deadline = time.monotonic() + 10
        while True:
            doc = client.get("/api/admin/documents/c1/notes", headers=admin).json()
            if doc["content"] == {"map": {"a": 1}} or time.monotonic() > deadline:
                break
        assert doc["content"] == {"map": {"a": 1}}
        assert doc["loaded"] is True
        assert doc["size"] > 0
        assert sum(doc["state_vector"].values()) == 1
        between = datetime.now(UTC)
        _write(ws, "b", 2)
        while client.get("/api/admin/documents/c1/notes", headers=admin).json()["content"] != {
            "map": {"a": 1, "b": 2}
        }:
            assert time.monotonic() < deadline
        rooms = client.get("/api/admin/rooms", headers=admin).json()["rooms"]
        (room,) = [r for r in rooms if r["name"] == "c1/notes"]
        (conn,) = room["connections"]
        assert conn["user_id"] == "ada"
        assert conn["name"] == "Ada"
        assert conn["role"] == "tutor"
        assert conn["bytes_in"] > 0
        assert conn["bytes_out"] > 0
        assert conn["device"] == "pytest-admin"
        assert conn["outbox_frames"] == 0
        history = client.get("/api/admin/history/c1/notes?limit=1", headers=admin).json()
        assert [e["author"] for e in history["entries"]] == ["ada"]
        assert history["next_after"] == 1
        page2 = client.get("/api/admin/history/c1/notes?after=1", headers=admin).json()
        assert [e["seq"] for e in page2["entries"]] == [2]
        assert page2["next_after"] is None
        mine = client.get("/api/admin/contributions/c1/notes", headers=admin).json()
        assert [(a["author"], a["updates"]) for a in mine["authors"]] == [("ada", 2)]
        past = client.get(
            "/api/admin/state/c1/notes", params={"at": between.isoformat()}, headers=admin
        ).json()
        assert past["content"] == {"map": {"a": 1}}
        assert past["seq"] == 1
        binary = client.get(
            "/api/admin/state/c1/notes",
            params={"at": between.isoformat(), "format": "binary"},
            headers=admin,
        )
        assert binary.headers["content-type"] == "application/octet-stream"
        rebuilt: Doc[Any] = Doc()
        rebuilt.apply_update(binary.content)
        assert rebuilt.get("map", type=Map).to_py() == {"a": 1}
        exported = client.get("/api/admin/export/c1/notes", headers=admin).content
        as_json = client.get("/api/admin/export/c1/notes?format=json", headers=admin).json()
        assert as_json["content"] == {"map": {"a": 1, "b": 2}}
        bad_time = client.get("/api/admin/state/c1/notes?at=yesterday", headers=admin)
        assert bad_time.status_code == 400
        assert bad_time.json()["error"] == "at must be an ISO 8601 time, not 'yesterday'"
    # Import into another document: same content, server-authored.
    r = client.post(
        "/api/admin/import/c1/copy",
        content=exported,
        headers={**admin, "content-type": "application/octet-stream"},
    )
    assert r.status_code == 200, r.text
    copy = client.get("/api/admin/documents/c1/copy", headers=admin).json()
    assert copy["content"] == {"map": {"a": 1, "b": 2}}
    corrupt = client.post("/api/admin/import/c1/copy", content=b"\xff\xff\xff", headers=admin)
    assert corrupt.status_code == 400
    assert corrupt.json()["error"] == "the body is not a Yjs update"
    bad_name = client.get("/api/admin/documents/c1/a%20b", headers=admin)
    assert bad_name.status_code == 400
    assert bad_name.json()["error"] == "invalid document name 'c1/a b'"


def test_json_import_builds_shared_types_as_a_forward_change_and_refuses_malformed_json(
    client: TestClient,
) -> None:
    admin = bearer(token(Role.ADMIN, "ops", classroom="admin"))
    as_json = {**admin, "content-type": "application/json"}
    body: dict[str, Any] = {
        "content": {"shapes": {"s1": {"t": "ink", "pts": [1, 2, 3]}}, "title": "Lesson"},
        "shared": [["shapes", "s1"], ["shapes", "s1", "pts"]],
    }
    with client.websocket_connect(f"/ws/c1/json?token={token(Role.TUTOR, 'ada')}") as ws:
        ws.receive_bytes()  # SyncStep1
        _write(ws, "kept", 1)
        r = client.post("/api/admin/import/c1/json", json=body, headers=admin)
        assert r.status_code == 200, r.text
        assert r.json()["format"] == "json"
        assert r.json()["change_bytes"] > 0
        # The connected client receives the import as one ordinary update.
        seen: Doc[Any] = Doc()
        seen.get("map", type=Map)
        while "shapes" not in to_data(seen):
            message = decode(ws.receive_bytes())
            if isinstance(message, SyncUpdate):
                seen.apply_update(message.update)
        assert to_data(seen)["shapes"] == body["content"]["shapes"]
    exported = client.get("/api/admin/export/c1/json", headers=admin)
    doc = from_update(exported.content)
    shape = doc.get("shapes", type=Map)["s1"]
    assert isinstance(shape, Map)
    assert isinstance(shape["pts"], Array)  # as the board draws them
    assert str(doc.get("title", type=Text)) == "Lesson"
    assert doc.get("map", type=Map).to_py() == {}  # a root the import lacks is emptied
    # Export as JSON, import it back: nothing changes.
    again = client.get("/api/admin/export/c1/json?format=json", headers=admin).json()
    assert again["shared"] == body["shared"]
    same = client.post("/api/admin/import/c1/json", json=again, headers=admin)
    assert same.json()["change_bytes"] == 0
    for raw, error in [
        (b"{not json", "the body is not JSON: Expecting property name enclosed in double quotes"),
        (b"[1, 2]", 'nothing imported: body must be {"content": {root: data}, "shared": [paths]?}'),
        (b'{"content": {"n": 1}}', "nothing imported: root 'n' must be an object, an array or"),
        (
            b'{"content": {"m": {}}, "shared": [["m", "x"]]}',
            "nothing imported: shared path ['m', 'x'] is not in content",
        ),
        (b"[" * 100_000, "the body is not JSON"),
    ]:
        refused = client.post("/api/admin/import/c1/json", content=raw, headers=as_json)
        assert refused.status_code == 400, raw[:40]
        assert refused.json()["error"].startswith(error)
        after = client.get("/api/admin/export/c1/json", headers=admin).content
        assert after == exported.content  # losing nothing


def _refused(ws: Any) -> str:
    """Reads until the server says a write was refused; its reason."""
    while True:
        message = decode(ws.receive_bytes())
        if isinstance(message, PermissionDenied):
            return message.reason


def _shapes(client: TestClient, admin: dict[str, str], want: dict[str, int]) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while True:
        doc = client.get("/api/admin/documents/c1/board", headers=admin).json()
        shapes: dict[str, Any] = doc["content"].get("shapes", {})
        if shapes == want:
            return shapes
        assert time.monotonic() < deadline, shapes
        time.sleep(0.02)


def test_a_downgrade_lasts_across_reconnects_until_restored(client: TestClient) -> None:
    admin = bearer(token(Role.ADMIN, "ops", classroom="admin"))
    url = f"/ws/c1/board?token={token(Role.STUDENT, 'sam')}"
    role = "/api/admin/connections/role"
    with client.websocket_connect(url) as ws:
        ws.receive_bytes()  # SyncStep1
        _write(ws, "a", 1, root="shapes")
        _shapes(client, admin, {"a": 1})
        r = client.post(role, json={"user_id": "sam", "role": "observer"}, headers=admin)
        assert r.status_code == 200, r.text
        assert r.json()["changed"] == 1
        assert r.json()["classrooms"] == ["c1"]
        _write(ws, "b", 2, root="shapes")  # the same connection: refused now
        assert _refused(ws).startswith("read-only")
        rooms = client.get("/api/admin/rooms", headers=admin).json()
        (conn,) = next(r for r in rooms["rooms"] if r["name"] == "c1/board")["connections"]
        assert (conn["role"], conn["read_only"]) == ("observer", True)
        assert rooms["nodes"]["missing"] == []
    # A reconnect with the very same token: still an observer.
    with client.websocket_connect(url) as ws:
        ws.receive_bytes()
        _write(ws, "c", 3, root="shapes")
        assert _refused(ws).startswith("read-only")
    overrides = client.get("/api/admin/classrooms/c1/roles", headers=admin).json()
    assert overrides["overrides"] == {"sam": "observer"}
    # The override lives in the classroom document, where tutors and clients can see it.
    state = client.get("/api/admin/documents/c1/class", headers=admin).json()["content"]["state"]
    assert state["role:sam"] == "observer"
    # Restored: writes are taken again, on a new connection as on an open one.
    with client.websocket_connect(url) as ws:
        ws.receive_bytes()
        r = client.post(
            role, json={"user_id": "sam", "role": None, "classroom": "c1"}, headers=admin
        )
        assert r.status_code == 200, r.text
        _write(ws, "d", 4, root="shapes")
        _shapes(client, admin, {"a": 1, "d": 4})
    assert client.get("/api/admin/classrooms/c1/roles", headers=admin).json()["overrides"] == {}
    bad = client.post(
        role, json={"user_id": "sam", "role": "tutor", "classroom": "c1"}, headers=admin
    )
    assert bad.status_code == 400
    assert bad.json()["error"] == "role must be one of student, observer, or null to restore"
    nobody = client.post(role, json={"user_id": "ghost", "role": "observer"}, headers=admin)
    assert nobody.json()["error"] == "the user has no open connection: name a classroom"


def test_a_tutor_downgraded_to_student_writes_only_what_a_student_may(
    client: TestClient,
) -> None:
    admin = bearer(token(Role.ADMIN, "ops", classroom="admin"))
    r = client.post(
        "/api/admin/connections/role",
        json={"user_id": "tia", "role": "student", "classroom": "c1"},
        headers=admin,
    )
    assert r.status_code == 200, r.text
    assert r.json()["changed"] == 0  # not connected: it applies when she comes
    with client.websocket_connect(f"/ws/c1/notes?token={token(Role.TUTOR, 'tia')}") as ws:
        ws.receive_bytes()
        _write(ws, "x", 1)
        assert _refused(ws).startswith("read-only")  # a student writes no other document
    with client.websocket_connect(f"/ws/c1/board?token={token(Role.TUTOR, 'tia')}") as ws:
        ws.receive_bytes()
        _write(ws, "s", 1, root="shapes")
        _shapes(client, admin, {"s": 1})  # a student may draw
        _write(ws, "k", 1, root="map")  # but not outside the board's roots
        assert _refused(ws).startswith("read-only")


def test_ending_a_users_connections_closes_them_with_4403(client: TestClient) -> None:
    admin = bearer(token(Role.ADMIN, "ops", classroom="admin"))
    with client.websocket_connect(f"/ws/c1/notes?token={token(Role.TUTOR, 'ada')}") as ws:
        ws.receive_bytes()
        r = client.post("/api/admin/connections/end", json={"user_id": "ada"}, headers=admin)
        assert r.status_code == 200, r.text
        assert r.json()["ended"] == 1
        assert r.json()["nodes"]["missing"] == []
        while True:
            message = ws.receive()
            if message["type"] == "websocket.close":
                break
        assert message["code"] == 4403
    again = client.post("/api/admin/connections/end", json={"user_id": "ada"}, headers=admin)
    assert again.json()["ended"] == 0


def test_delete_refuses_new_connections_and_undelete_restores(client: TestClient) -> None:
    admin = bearer(token(Role.ADMIN, "ops", classroom="admin"))
    url = f"/ws/c1/gone?token={token(Role.TUTOR, 'ada')}"
    with client.websocket_connect(url) as ws:
        ws.receive_bytes()
        _write(ws, "k", 1)
        r = client.delete("/api/admin/documents/c1/gone", headers=admin)
        assert r.status_code == 200
        assert r.json()["ended"] == 1
    assert client.get("/api/admin/documents/c1/gone", headers=admin).json()["deleted"] is True
    with client.websocket_connect(url) as ws:
        assert decode(ws.receive_bytes()).__class__.__name__ == "PermissionDenied"
        closed = ws.receive()
        assert closed["code"] == 4404
    assert client.post("/api/admin/undelete/c1/gone", headers=admin).status_code == 200
    doc = client.get("/api/admin/documents/c1/gone", headers=admin).json()
    assert doc["deleted"] is False
    assert doc["content"] == {"map": {"k": 1}}


def _stays(client: TestClient, admin: dict[str, str], open_: int) -> list[dict[str, Any]]:
    """The merged stays, once exactly ``open_`` of the recorded connections are open."""
    deadline = time.monotonic() + 10
    while True:
        body = client.get("/api/admin/classrooms/c1/attendance", headers=admin).json()
        still = sum(1 for c in body["connections"] if c["to"] is None)
        if still == open_:
            stays: list[dict[str, Any]] = body["present"]
            return stays
        assert time.monotonic() < deadline, body
        time.sleep(0.02)


def test_attendance_follows_joins_drops_and_rejoins(client: TestClient) -> None:
    admin = bearer(token(Role.ADMIN, "ops", classroom="admin"))
    start = datetime.now(UTC)
    ada = f"/ws/c1/board?token={token(Role.TUTOR, 'ada')}"
    bo = f"/ws/c1/board?token={token(Role.TUTOR, 'bo')}"
    phone = {"user-agent": "Phone/1.0"}
    with client.websocket_connect(ada) as a1:
        a1.receive_bytes()
        with client.websocket_connect(bo, headers=phone) as b1:
            b1.receive_bytes()
            stays = _stays(client, admin, 2)
            assert sorted((s["user_id"], s["to"]) for s in stays) == [("ada", None), ("bo", None)]
        _stays(client, admin, 1)  # bo dropped
        with client.websocket_connect(bo, headers=phone) as b2:  # and rejoined
            b2.receive_bytes()
            _stays(client, admin, 2)
    stays = _stays(client, admin, 0)
    by_user: dict[str, list[dict[str, Any]]] = {}
    for s in stays:
        by_user.setdefault(s["user_id"], []).append(s)
    assert len(by_user["ada"]) == 1
    assert len(by_user["bo"]) == 2
    first, second = by_user["bo"]
    assert first["device"] == second["device"] == "Phone/1.0"
    assert by_user["ada"][0]["device"] == "pytest-admin"
    assert first["to"] <= second["from"]
    (a,) = by_user["ada"]
    assert a["from"] <= first["from"]
    assert second["to"] <= a["to"]
    assert datetime.fromisoformat(a["from"]) >= start - timedelta(seconds=1)
    assert all(s["name"] in ("Ada", "Bo") for s in stays)


def test_audit_is_permanent_table_with_index(client: TestClient) -> None:
    with state(client).engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(audit_table)).scalar() == 0


def test_billing_dispute_evidence_lists_attendance_of_the_accounts_classrooms(
    client: TestClient,
) -> None:
    from server.admin import billing_attendance

    directory = state(client).directory
    owner = directory.create_account("t@example.org", PASSWORD, role="tutor", name="T")
    room = directory.create_classroom("Algebra", owner)
    other = directory.create_classroom("Not hers", None)
    url = f"/ws/{room.id}/board?token={token(Role.TUTOR, 'kim', classroom=room.id)}"
    elsewhere = f"/ws/{other.id}/board?token={token(Role.TUTOR, 'lee', classroom=other.id)}"
    with client.websocket_connect(url) as ws, client.websocket_connect(elsewhere) as ws2:
        ws.receive_bytes()
        ws2.receive_bytes()
    deadline = time.monotonic() + 10
    while True:
        evidence = billing_attendance(state(client), owner.user_id)
        if evidence and evidence[0]["to"] is not None:
            break
        assert time.monotonic() < deadline, evidence
        time.sleep(0.02)
    assert [(e["user_id"], e["classroom"]) for e in evidence] == [("kim", room.id)]
    assert billing_attendance(state(client), "acct-999") == []
    assert billing_attendance(state(client), "cus_123") == []


def test_a_tutor_replays_their_own_classroom_board_read_only(client: TestClient) -> None:
    tutor = bearer(token(Role.TUTOR, "kim", classroom="c7"))
    with client.websocket_connect(f"/ws/c7/board?token={token(Role.TUTOR, 'kim', 'c7')}") as ws:
        ws.receive_bytes()
        _write(ws, "a", 1)
        deadline = time.monotonic() + 10
        while not client.get("/api/classrooms/c7/replay/history", headers=tutor).json()["entries"]:
            assert time.monotonic() < deadline
            time.sleep(0.02)
    history = client.get("/api/classrooms/c7/replay/history", headers=tutor).json()
    (entry,) = history["entries"]
    assert entry["author"] == "kim"
    past = client.get(
        "/api/classrooms/c7/replay/state", params={"at": entry["at"]}, headers=tutor
    ).content
    doc: Doc[Any] = Doc()
    doc.apply_update(past)
    assert doc.get("map", type=Map).to_py() == {"a": 1}
    for other in (
        token(Role.TUTOR, "lee", classroom="c8"),
        token(Role.STUDENT, "s", classroom="c7"),
        token(Role.OBSERVER, "o", classroom="c7"),
    ):
        r = client.get("/api/classrooms/c7/replay/history", headers=bearer(other))
        assert r.status_code == 403
        r = client.get("/api/classrooms/c7/replay/state?at=2026-01-01", headers=bearer(other))
        assert r.status_code == 403
    # Read-only: there is no restore for tutors.
    restore = client.post("/api/admin/restore/c7/board", json={"at": entry["at"]}, headers=tutor)
    assert restore.status_code == 403


def _sample(path: str) -> str:
    return (
        path.replace("{name}", "c1/board")
        .replace("{classroom}", "c1")
        .replace("{stripe_customer_id}", "cus_1")
    )


def test_a_flood_of_refused_calls_is_bounded_in_the_audit_log(client: TestClient) -> None:
    assert state(client).admin_refusals.limit == 120  # per address and minute
    state(client).admin_refusals = Attempts(10, 60.0)
    student = bearer(token(Role.STUDENT, "s1"))
    codes = [client.get("/api/admin/rooms", headers=student).status_code for _ in range(13)]
    assert codes[:10] == [403] * 10
    assert codes[10:] == [429] * 3
    assert len(audit_rows(client)) == 10
    # Admins are never held back by others' refusals.
    admin = bearer(token(Role.ADMIN, "ops", classroom="admin"))
    assert client.get("/api/admin/rooms", headers=admin).status_code == 200
