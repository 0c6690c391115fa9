"""``POST /api/control`` and the bus status in ``/readyz``, on one live node."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import websockets
from starlette.testclient import TestClient

from collab.ports import ControlCall, ControlKind, DocumentName, Peer
from server.app import create_app
from server.auth import Role, issue
from server.control import matches
from server.settings import Settings

from .live import live_server, settings_for

SECRET = "control-test-secret-" + "0123456789abcdef" * 4


def token(role: Role = Role.TUTOR, classroom: str = "c1", user: str = "u1") -> str:
    return issue(SECRET, classroom=classroom, role=role, user_id=user, name=user)


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(data_dir=tmp_path, secret=SECRET))) as test_client:
        yield test_client


def post(client: TestClient, body: object, bearer: str | None) -> Any:
    headers = {"authorization": f"Bearer {bearer}"} if bearer else {}
    return client.post("/api/control", json=body, headers=headers)


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        ({"kind": "nope", "user": "u"}, 400, "kind must be one of"),
        ({"kind": "end_user"}, 400, "end_user needs a user"),
        ({"kind": "end_classroom", "user": "u"}, 400, "end_classroom needs a classroom"),
        ({"kind": "access_revoked"}, 400, "name a user, a classroom, or both"),
        ({"kind": "end_user", "user": 7}, 400, "user must be a string"),
        ([1], 400, "body must be a JSON object"),
    ],
)
def test_bad_calls_are_refused_with_the_reason(
    client: TestClient, body: object, status: int, error: str
) -> None:
    response = post(client, body, token(Role.ADMIN, "admin"))
    assert response.status_code == status
    assert error in response.json()["error"]


def test_only_admins_and_the_classrooms_tutor_may_publish(client: TestClient) -> None:
    call = {"kind": "end_classroom", "classroom": "c1"}
    assert post(client, call, None).status_code == 401
    assert post(client, call, token(Role.STUDENT)).status_code == 403
    assert post(client, call, token(Role.TUTOR, "c2")).status_code == 403
    assert post(client, call, token(Role.TUTOR, "c1")).status_code == 202
    assert post(client, call, token(Role.ADMIN, "admin")).status_code == 202


def test_readyz_is_degraded_not_failed_while_the_bus_is_down(client: TestClient) -> None:
    bus = client.app.state.inkroom.registry.bus  # type: ignore[attr-defined]
    bus.partition()
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "degraded"
    assert ready.json()["degraded"]["bus"] == ["disconnected"]
    assert post(client, {"kind": "end_user", "user": "u"}, token(Role.ADMIN)).status_code == 503
    bus.heal()
    assert client.get("/readyz").json()["status"] == "ready"


def test_calls_select_by_user_and_classroom() -> None:
    peer = Peer("u1")
    doc = DocumentName("c1/board")
    assert matches(ControlCall(ControlKind.END_USER, user="u1"), doc, peer)
    assert not matches(ControlCall(ControlKind.END_USER, user="u2"), doc, peer)
    assert matches(ControlCall(ControlKind.END_CLASSROOM, classroom="c1"), doc, peer)
    assert not matches(ControlCall(ControlKind.END_CLASSROOM, classroom="c10"), doc, peer)
    assert matches(ControlCall(ControlKind.ACCESS_REVOKED, user="u1", classroom="c1"), doc, peer)
    assert not matches(
        ControlCall(ControlKind.ACCESS_REVOKED, user="u1", classroom="c2"), doc, peer
    )
    assert not matches(ControlCall(ControlKind.ACCESS_REVOKED), doc, peer)


@pytest.mark.anyio
async def test_an_ended_classroom_closes_its_connections_with_4404(tmp_path: Path) -> None:
    with live_server(settings_for(tmp_path, SECRET)) as url:
        async with websockets.connect(f"{url}/ws/c1?token={token()}") as ws:
            await ws.recv()
            request = urllib.request.Request(
                url.replace("ws://", "http://") + "/api/control",
                data=json.dumps(
                    {"kind": "end_classroom", "classroom": "c1", "reason": "archived"}
                ).encode(),
                headers={"authorization": f"Bearer {token(Role.ADMIN, 'admin')}"},
                method="POST",
            )
            status = await asyncio.to_thread(lambda: urllib.request.urlopen(request).status)
            assert status == 202
            async with asyncio.timeout(5):
                await ws.wait_closed()
            assert (ws.close_code, ws.close_reason) == (4404, "archived")
