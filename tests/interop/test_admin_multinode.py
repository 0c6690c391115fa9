"""The admin inspector across two real nodes on real Redis and PostgreSQL, with stock Yjs
clients: one node lists every node's rooms and connections and names a node that does not
answer; a downgrade made through one node stops writes on the other, lasts across a
reconnect to either node, and is undone; ending a connection reaches the node serving it.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from typing import Any

import anyio
import httpx2 as httpx
import pytest

from server.auth import Role

from .inkroom_process import CLASSROOM, InkroomServer
from .node_client import DriverError, OpenDriver, YClient
from .test_multinode import Nodes, database_url, nodes  # noqa: F401 - fixtures

pytestmark = [pytest.mark.interop, pytest.mark.integration, pytest.mark.anyio]


async def api(server: InkroomServer, method: str, path: str, **kwargs: Any) -> Any:
    headers = {"authorization": f"Bearer {server.token('ops', Role.ADMIN, user_id='ops')}"}
    async with httpx.AsyncClient(base_url=server.http_url, headers=headers, timeout=15) as c:
        response = await c.request(method, path, **kwargs)
    assert response.status_code == 200, response.text
    return response.json()


def connections(listing: dict[str, Any], document: str) -> dict[str, tuple[str, str, bool]]:
    """``{user: (node, role, read_only)}`` of the document's connections on every node."""
    return {
        c["user_id"]: (c["node"], c["role"], c["read_only"])
        for room in listing["rooms"]
        if room["name"] == document
        for c in room["connections"]
    }


async def first_refused(client: YClient, prefix: str) -> str:
    """Writes until the server refuses one (the override reaches the client's node over the
    bus: until then a write may still be taken); the refused write's key."""
    for attempt in range(20):
        key = f"{prefix}-{attempt}"
        await client.map_set(key, 1)
        try:
            await client.wait(denied=1, deadline=1.0)
        except DriverError:
            continue
        return key
    raise AssertionError(f"{client!r}'s writes were never refused")


async def until(check: Callable[[dict[str, Any]], bool], server: InkroomServer, name: str) -> None:
    """Polls the document's ``map`` root through the admin API until ``check`` holds."""
    deadline = time.monotonic() + 10
    while True:
        doc = await api(server, "GET", f"/api/admin/documents/{name}")
        if check(doc["content"].get("map", {})):
            return
        assert time.monotonic() < deadline, doc["content"]
        await anyio.sleep(0.05)


async def test_rooms_downgrade_and_end_across_two_nodes(
    nodes: Nodes,  # noqa: F811 - the fixture
    node: OpenDriver,
    board: str,
) -> None:
    a, b = await nodes.start({}, {})
    ids = {a: a.env["INKROOM_NODE_ID"], b: b.env["INKROOM_NODE_ID"]}
    driver = await node()
    ada_token = a.token(CLASSROOM, Role.TUTOR, user_id="ada")
    bo_token = a.token(CLASSROOM, Role.TUTOR, user_id="bo")
    ada = await driver.client("ada", server_url=a.ws_url, room=board, token=ada_token)
    bo = await driver.client("bo", server_url=b.ws_url, room=board, token=bo_token)
    await ada.wait(synced=True, deadline=10)
    await bo.wait(synced=True, deadline=10)

    # One node lists both nodes' connections, each with the node that serves it.
    deadline = time.monotonic() + 10
    while True:
        listing = await api(a, "GET", "/api/admin/rooms")
        if len(connections(listing, board)) == 2 or time.monotonic() > deadline:
            break
        await anyio.sleep(0.05)
    assert connections(listing, board) == {
        "ada": (ids[a], "tutor", False),
        "bo": (ids[b], "tutor", False),
    }
    assert listing["nodes"] == {"answered": sorted(ids.values()), "missing": []}
    (bo_conn,) = [
        c
        for r in listing["rooms"]
        if r["name"] == board
        for c in r["connections"]
        if c["user_id"] == "bo"
    ]
    assert bo_conn["bytes_in"] > 0
    assert bo_conn["bytes_out"] > 0
    assert bo_conn["connected_since"]
    assert bo_conn["outbox_frames"] == 0

    # A downgrade made through node A stops bo's writes on node B, on the same connection.
    changed = await api(
        a, "POST", "/api/admin/connections/role", json={"user_id": "bo", "role": "observer"}
    )
    assert changed["changed"] == 1
    assert changed["classrooms"] == [CLASSROOM]
    refused = await first_refused(bo, "graffiti")
    listing = await api(b, "GET", "/api/admin/rooms")
    assert connections(listing, board)["bo"] == (ids[b], "observer", True)

    # Reconnecting with the very same token, to either node: still an observer.
    for server in (b, a):
        again = await driver.client(
            f"bo-{server.port}", server_url=server.ws_url, room=board, token=bo_token
        )
        await again.wait(synced=True, deadline=10)
        await again.map_set("after-reconnect", server.port)
        await again.wait(denied=1, deadline=10)
        await again.destroy()
    await ada.map_set("barrier", 1)
    await until(lambda m: "barrier" in m, a, board)
    doc = await api(a, "GET", f"/api/admin/documents/{board}")
    assert refused not in doc["content"]["map"]
    assert "after-reconnect" not in doc["content"]["map"]

    # Restored through node B: bo writes again (a client of his that the server never
    # refused: the refused one keeps, locally, the writes the server did not take).
    restored = await api(
        b,
        "POST",
        "/api/admin/connections/role",
        json={"user_id": "bo", "role": None, "classroom": CLASSROOM},
    )
    assert restored["role"] is None
    back = await driver.client("bo-back", server_url=b.ws_url, room=board, token=bo_token)
    await back.wait(synced=True, deadline=10)
    await back.map_set("welcome-back", 1)
    await until(lambda m: m.get("welcome-back") == 1, a, board)
    assert (await back.read()).denied == []

    # Ending bo's connections through node A closes both on node B (4403).
    ended = await api(a, "POST", "/api/admin/connections/end", json={"user_id": "bo"})
    assert ended["ended"] == 2
    assert ended["nodes"]["missing"] == []
    for client in (bo, back):
        closed = await client.wait(closes=1, deadline=10)
        assert closed.closes[0].code == 4403

    # A node that does not answer (frozen) is named, not silently left out.
    b.send_signal(signal.SIGSTOP)
    try:
        listing = await api(a, "GET", "/api/admin/rooms")
    finally:
        b.send_signal(signal.SIGCONT)
    assert listing["nodes"]["missing"] == [ids[b]]
    assert listing["nodes"]["answered"] == [ids[a]]
    assert set(connections(listing, board)) == {"ada"}

    # A deletion through node A reaches node B's join gate at once: a join on B just
    # before it was let in (B keeps that "open" verdict for 2 s, server/join_gate.py), and
    # the join right after it is refused, not let in on the kept verdict.
    cy_token = a.token(CLASSROOM, Role.TUTOR, user_id="cy")
    cy = await driver.client("cy", server_url=b.ws_url, room=board, token=cy_token)
    await cy.wait(synced=True, deadline=10)
    deleted = await api(a, "DELETE", f"/api/admin/documents/{board}")
    assert deleted["deleted"] is True
    assert (await cy.wait(closes=1, deadline=10)).closes[0].code == 4404
    late = await driver.client("cy-late", server_url=b.ws_url, room=board, token=cy_token)
    assert (await late.wait(closes=1, deadline=10)).closes[0].code == 4404
