"""The admin inspector against stock ``yjs`` + ``y-websocket`` clients and a real server:
the state at T is what the clients saw at T; restore-to-T reaches connected clients as an
ordinary update; a live downgrade stops a user's writes without a reconnect."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx2 as httpx
import pytest

from server.auth import Role

from .inkroom_process import CLASSROOM, InkroomServer
from .node_client import OpenDriver, Snapshot, YClient

pytestmark = [pytest.mark.interop, pytest.mark.anyio]


def visible(content: dict[str, Any]) -> dict[str, Any]:
    """Content without empty roots (a client lists every type it knows; the server only
    the roots that hold something), numbers as the JSON the server sends them."""
    return {k: v for k, v in content.items() if v not in ({}, [], "")}


def converged(a: Snapshot, b: Snapshot) -> dict[str, Any]:
    assert a.content == b.content
    assert a.clocks == b.clocks
    return a.content


async def api(server: InkroomServer, method: str, path: str, **kwargs: Any) -> httpx.Response:
    headers = {"authorization": f"Bearer {server.token('ops', Role.ADMIN, user_id='ops')}"}
    async with httpx.AsyncClient(base_url=server.http_url, headers=headers, timeout=10) as c:
        response = await c.request(method, path, **kwargs)
    assert response.status_code == 200, response.text
    return response


async def test_state_at_t_restore_and_live_downgrade(
    inkroom: InkroomServer, node: OpenDriver, board: str
) -> None:
    driver = await node()
    ada_token = inkroom.token(CLASSROOM, Role.TUTOR, user_id="ada")
    bo_token = inkroom.token(CLASSROOM, Role.TUTOR, user_id="bo")
    ada = await driver.client("ada", server_url=inkroom.ws_url, room=board, token=ada_token)
    bo = await driver.client("bo", server_url=inkroom.ws_url, room=board, token=bo_token)
    await ada.wait(synced=True)
    await bo.wait(synced=True)

    # A scripted session: after each step both clients agree, then the moment is noted.
    steps: list[tuple[YClient, str, Any]] = [
        (ada, "map", ("colour", "red")),
        (bo, "array", ["stroke-1"]),
        (ada, "text", "Hello"),
        (bo, "map", ("colour", "blue")),
        (ada, "array", ["stroke-2", {"id": "s3", "pts": [1, 2]}]),
        (bo, "text", " world"),
    ]
    moments: list[tuple[datetime, dict[str, Any]]] = []
    for writer, kind, value in steps:
        if kind == "map":
            await writer.map_set(*value)
        elif kind == "array":
            await writer.array_push(*value)
        else:
            await writer.text_insert(value)
        mine = await writer.read()
        other = bo if writer is ada else ada
        seen = await other.wait(content=mine.content, clocks=mine.clocks, deadline=10)
        moments.append((datetime.now(UTC), converged(mine, seen)))

    for at, content in moments:
        past = (
            await api(inkroom, "GET", f"/api/admin/state/{board}", params={"at": at.isoformat()})
        ).json()
        assert past["content"] == visible(content), at

    # Restore to the third moment: both clients receive it as an ordinary update.
    at, then = moments[2]
    restored = await api(
        inkroom, "POST", f"/api/admin/restore/{board}", json={"at": at.isoformat()}
    )
    assert restored.json()["seq"] >= 3
    a = await ada.wait(content=then, deadline=10)
    b = await bo.wait(content=then, deadline=10)
    assert converged(a, b) == then
    doc = (await api(inkroom, "GET", f"/api/admin/documents/{board}")).json()
    assert doc["content"] == visible(then)
    assert {int(k): v for k, v in doc["state_vector"].items()} == a.clocks
    assert a.closes == []  # nobody reconnected to get there
    assert b.closes == []

    # Live downgrade: bo becomes an observer on the same connection.
    changed = await api(
        inkroom,
        "POST",
        "/api/admin/connections/role",
        json={"user_id": "bo", "role": "observer"},
    )
    assert changed.json()["changed"] == 1
    rooms = (await api(inkroom, "GET", "/api/admin/rooms")).json()["rooms"]
    (room,) = [r for r in rooms if r["name"] == board]
    roles = {c["user_id"]: (c["role"], c["read_only"]) for c in room["connections"]}
    assert roles == {"ada": ("tutor", False), "bo": ("observer", True)}
    await bo.map_set("graffiti", "yes")
    await bo.wait(denied=1, deadline=10)
    # A barrier: ada's next write reaches bo over the same, still-open connection, and
    # the server never took bo's write.
    await ada.map_set("after", 1)
    expected = {**then, "map": {**then["map"], "after": 1}}
    await ada.wait(content=expected, deadline=10)
    # bo's own view drops the refused write too (it comes back retracted), so both agree.
    seen = await bo.wait(content=expected, deadline=10)
    assert seen.closes == []
    doc = (await api(inkroom, "GET", f"/api/admin/documents/{board}")).json()
    assert "graffiti" not in doc["content"]["map"]
    assert doc["content"]["map"]["after"] == 1
