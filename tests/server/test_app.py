"""The HTTP/WebSocket edge through Starlette's TestClient: auth, bad input, health, metrics."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import websockets
from starlette.testclient import TestClient

from collab.protocol import PermissionDenied, SyncStep1, SyncStep2, decode
from server.app import create_app
from server.auth import Role, issue
from server.settings import Settings

from .live import live_server, settings_for

SECRET = "app-test-secret-" + "0123456789abcdef" * 4
OTHER_SECRET = "other-secret-" + "x" * 64


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    with live_server(settings_for(tmp_path, SECRET, max_message_bytes=64 * 1024)) as url:
        yield url


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(data_dir=tmp_path, secret=SECRET, max_message_bytes=64 * 1024)
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def token(role: Role = Role.TUTOR, classroom: str = "c1", user: str = "u1") -> str:
    return issue(SECRET, classroom=classroom, role=role, user_id=user, name=user)


def test_health_ready_and_metrics(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok"}
    body = client.get("/metrics").text
    for name in (
        "inkroom_connections",
        "inkroom_rooms",
        "inkroom_updates_in_total",
        "inkroom_outbox_drops_total",
        "inkroom_save_seconds_bucket",
    ):
        assert name in body


async def _closed(url: str, *send: bytes | str) -> tuple[int, list[bytes]]:
    """Connects, sends frames, and returns the close code and what arrived before it."""
    received: list[bytes] = []
    async with websockets.connect(url, max_size=None) as ws:
        for frame in send:
            await ws.send(frame)
        try:
            async with asyncio.timeout(5):
                async for message in ws:
                    assert isinstance(message, bytes)
                    received.append(message)
        except websockets.ConnectionClosed:
            pass
        assert ws.close_code is not None
        return ws.close_code, received


@pytest.mark.anyio
async def test_valid_token_gets_sync_step1_then_step2(server: str) -> None:
    async with websockets.connect(f"{server}/ws/c1/board?token={token()}") as ws:
        assert isinstance(decode(await ws.recv()), SyncStep1)  # type: ignore[arg-type]
        await ws.send(bytes(SyncStep1(b"\x00")))
        assert isinstance(decode(await ws.recv()), SyncStep2)  # type: ignore[arg-type]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("", 4401),
        ("?token=not-a-jwt", 4401),
        (
            f"?token={issue(OTHER_SECRET, classroom='c1', role=Role.TUTOR, user_id='u')}",
            4401,
        ),
        (f"?token={token(classroom='c2')}", 4403),
    ],
)
async def test_refused_tokens_get_a_permanent_close_code_and_no_document(
    server: str, query: str, code: int
) -> None:
    closed, received = await _closed(f"{server}/ws/c1/board{query}")
    assert closed == code
    assert [type(decode(m)) for m in received] == [PermissionDenied]


@pytest.mark.anyio
async def test_text_frame_closes_with_1003(server: str) -> None:
    closed, _ = await _closed(f"{server}/ws/c1/board?token={token()}", "hello")
    assert closed == 1003


@pytest.mark.anyio
async def test_oversized_frame_closes_with_1009(server: str) -> None:
    closed, _ = await _closed(
        f"{server}/ws/c1/board?token={token()}", b"\x00\x02" + bytes(100 * 1024)
    )
    assert closed == 1009


@pytest.mark.anyio
async def test_malformed_frame_closes_with_1002(server: str) -> None:
    closed, _ = await _closed(f"{server}/ws/c1/board?token={token()}", b"\x00\x09\x00")
    assert closed == 1002


@pytest.mark.anyio
async def test_token_never_appears_in_logs(server: str, caplog: pytest.LogCaptureFixture) -> None:
    from server.logs import JsonFormatter

    secret_token = token(classroom="c2")
    caplog.set_level(logging.DEBUG)
    closed, _ = await _closed(f"{server}/ws/c1/board?token={secret_token}")
    assert closed == 4403
    formatter = JsonFormatter()
    rendered = "\n".join(formatter.format(r) for r in caplog.records)
    assert "connection refused" in rendered
    assert secret_token not in rendered
    assert secret_token.split(".")[2] not in rendered


def test_redaction_covers_query_strings_and_bearer_headers() -> None:
    from server.logs import redact

    assert redact("GET /ws/c1?token=abc.def.ghi&x=1") == "GET /ws/c1?token=[redacted]&x=1"
    assert redact("Authorization: Bearer abc.def.ghi") == "Authorization: Bearer [redacted]"


def test_tutor_token_mints_invite_links_students_cannot(client: TestClient) -> None:
    response = client.post(
        "/api/classrooms/c1/invites",
        headers={"Authorization": f"Bearer {token()}"},
        json={"role": "student", "ttl": 600},
    )
    assert response.status_code == 201
    invite = response.json()
    assert invite["url"] == f"http://testserver/j/{invite['code']}"
    assert (invite["classroom"], invite["role"], invite["status"]) == ("c1", "student", "ok")

    student = client.post(
        "/api/classrooms/c1/invites",
        headers={"Authorization": f"Bearer {token(Role.STUDENT)}"},
        json={"role": "student"},
    )
    assert student.status_code == 403
    other = client.post(
        "/api/classrooms/c2/invites", headers={"Authorization": f"Bearer {token()}"}, json={}
    )
    assert other.status_code == 403
    anonymous = client.post("/api/classrooms/c1/invites", json={})
    assert anonymous.status_code == 401
    bad_role = client.post(
        "/api/classrooms/c1/invites",
        headers={"Authorization": f"Bearer {token()}"},
        json={"role": "admin"},
    )
    assert bad_role.status_code == 400
