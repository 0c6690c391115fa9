"""Stock ``yjs`` 13.6 + ``y-websocket`` 3.1.0 clients (Node) against a real Inkroom server.

Two providers in one Node process would also sync over a BroadcastChannel, hiding server
bugs: every provider here has ``disableBc: true``. Every wait is on a client event with a
deadline; "never sees" assertions come after a barrier that orders them (see each test).
"""

from __future__ import annotations

import secrets
import time
from typing import Any

import pytest

from server.auth import Role

from .inkroom_process import CLASSROOM, InkroomServer, StartServer
from .node_client import NodeDriver, OpenDriver, Snapshot, YClient

pytestmark = [pytest.mark.interop, pytest.mark.anyio]

EMPTY: dict[str, Any] = {"map": {}, "array": [], "text": ""}
UNAUTHORIZED = 4401
FORBIDDEN = 4403


async def joined(
    driver: NodeDriver, name: str, server: InkroomServer, room: str, *, token: str | None = None
) -> YClient:
    """A client on ``room`` whose provider has emitted ``sync`` (SyncStep2 received)."""
    client = await driver.client(
        name, server_url=server.ws_url, room=room, token=token or server.token(CLASSROOM)
    )
    await client.wait(synced=True)
    return client


def covering(*snapshots: Snapshot) -> dict[int, int]:
    """The state vector that covers every given client's state."""
    clocks: dict[int, int] = {}
    for snapshot in snapshots:
        for client_id, clock in snapshot.clocks.items():
            clocks[client_id] = max(clock, clocks.get(client_id, 0))
    return clocks


async def test_two_clients_converge_on_map_array_and_text(
    inkroom: InkroomServer, node: OpenDriver, board: str
) -> None:
    driver = await node()
    alice = await joined(driver, "alice", inkroom, board)
    bob = await joined(driver, "bob", inkroom, board)

    await alice.map_set("color", "red")
    await alice.array_push("stroke-1", {"id": "stroke-2", "points": [1, 2, 3]})
    await alice.text_insert("Hello")
    from_alice = {
        "map": {"color": "red"},
        "array": ["stroke-1", {"id": "stroke-2", "points": [1, 2, 3]}],
        "text": "Hello",
    }
    assert (await bob.wait(content=from_alice)).content == from_alice

    await bob.map_set("color", "blue")
    await bob.map_set("width", 3)
    await bob.array_push("stroke-3")
    await bob.text_insert(", world", index=5)
    await bob.text_insert(">> ", index=0)
    expected = {
        "map": {"color": "blue", "width": 3},
        "array": ["stroke-1", {"id": "stroke-2", "points": [1, 2, 3]}, "stroke-3"],
        "text": ">> Hello, world",
    }
    seen_by_alice = await alice.wait(content=expected)
    bobs = await bob.read()
    assert bobs.content == expected
    assert seen_by_alice.state_vector == bobs.state_vector


async def test_awareness_flows_between_clients(
    inkroom: InkroomServer, node: OpenDriver, board: str
) -> None:
    driver = await node()
    alice = await joined(driver, "alice", inkroom, board)
    bob = await joined(driver, "bob", inkroom, board)

    presence = {"user": {"name": "Alice", "color": "#e11d48"}, "cursor": {"x": 10, "y": 20}}
    await alice.set_awareness(presence)
    seen = await bob.wait(present={alice.client_id: presence})
    assert seen.awareness[alice.client_id] == presence

    moved = {**presence, "cursor": {"x": 12, "y": 26}}
    await alice.set_awareness(moved)
    seen = await bob.wait(present={alice.client_id: {"cursor": moved["cursor"]}})
    assert seen.awareness[alice.client_id] == moved

    await bob.set_awareness({"user": {"name": "Bob"}, "cursor": None})
    seen = await alice.wait(present={bob.client_id: {"user": {"name": "Bob"}, "cursor": None}})
    # Only the two clients: the server adds no awareness participant of its own.
    assert set(seen.awareness) == {alice.client_id, bob.client_id}


async def test_late_joiner_gets_full_state(
    inkroom: InkroomServer, node: OpenDriver, board: str
) -> None:
    driver = await node()
    writer = await joined(driver, "writer", inkroom, board)
    witness = await joined(driver, "witness", inkroom, board)

    for i in range(40):
        await writer.map_set(f"key-{i}", f"value-{i}")
    for start in range(0, 200, 25):
        await writer.array_push(*range(start, start + 25))
    for word in ("The ", "quick ", "brown ", "fox"):
        await writer.text_insert(word)
    expected = {
        "map": {f"key-{i}": f"value-{i}" for i in range(40)},
        "array": list(range(200)),
        "text": "The quick brown fox",
    }
    # The witness seeing everything means the server has applied everything.
    await witness.wait(content=expected)
    # From here on only the server holds the edits (clients never answer each other).
    await writer.destroy()
    # Its goodbye has been relayed, so the server's presence no longer lists it either.
    await witness.wait(absent=[writer.client_id])
    presence = {"user": {"name": "Witness"}, "cursor": {"x": 3, "y": 4}}
    await witness.set_awareness(presence)

    late = await driver.client(
        "late", server_url=inkroom.ws_url, room=board, token=inkroom.token(CLASSROOM)
    )
    at_sync = await late.wait(synced=True)
    # 'sync' fires on SyncStep2: the whole document arrived in the handshake.
    assert at_sync.content == expected
    seen = await late.wait(present={witness.client_id: presence})
    assert writer.client_id not in seen.awareness


async def test_late_joiner_gets_a_large_document_in_slices_and_syncs_once_it_has_all(
    inkroom: InkroomServer, node: OpenDriver, board: str
) -> None:
    """A first sync past 8 KiB leaves in several updates, SyncStep2 last: the stock
    client applies them all and counts itself synced only with the whole document."""
    driver = await node()
    writer = await joined(driver, "writer", inkroom, board)
    rows = [f"{i:04d}:" + "ink " * 120 for i in range(400)]  # ~200 KB
    for start in range(0, len(rows), 50):
        await writer.array_push(*rows[start : start + 50])
    await writer.map_set("done", True)
    witness = await joined(driver, "witness", inkroom, board)
    expected = {"map": {"done": True}, "array": rows, "text": ""}
    await witness.wait(content=expected)
    late = await driver.client(
        "late", server_url=inkroom.ws_url, room=board, token=inkroom.token(CLASSROOM)
    )
    at_sync = await late.wait(synced=True)
    assert at_sync.content == expected
    assert at_sync.sync_events == 1
    assert at_sync.sockets == 1


@pytest.mark.parametrize("offline", ["both", "one"])
async def test_offline_edits_converge_after_reconnect(
    inkroom: InkroomServer, node: OpenDriver, board: str, offline: str
) -> None:
    driver = await node()
    alice = await joined(driver, "alice", inkroom, board)
    bob = await joined(driver, "bob", inkroom, board)
    await alice.map_set("title", "Fractions")
    await alice.text_insert("Notes:")
    await bob.wait(content={"map": {"title": "Fractions"}, "array": [], "text": "Notes:"})

    await alice.disconnect()
    if offline == "both":
        await bob.disconnect()
    assert (await alice.read()).status == "disconnected"

    await alice.map_set("alice", "offline edit")
    await alice.map_set("winner", "alice")
    await alice.array_push("a-1", "a-2")
    await alice.text_insert(" from alice")
    await bob.map_set("bob", "offline edit" if offline == "both" else "online edit")
    await bob.map_set("winner", "bob")
    await bob.array_push("b-1")
    await bob.text_insert("[bob] ", index=0)
    before_a, before_b = await alice.read(), await bob.read()
    assert before_a.content != before_b.content
    target = covering(before_a, before_b)

    await alice.connect()
    if offline == "both":
        await bob.connect()
    after_a = await alice.wait(synced=True, clocks=target)
    after_b = await bob.wait(synced=True, clocks=target)

    assert after_a.content == after_b.content
    assert after_a.state_vector == after_b.state_vector
    merged = after_a.content
    assert merged["map"]["title"] == "Fractions"
    assert merged["map"]["alice"] == "offline edit"
    assert merged["map"]["bob"] in {"offline edit", "online edit"}
    assert merged["map"]["winner"] in {"alice", "bob"}
    assert sorted(merged["array"]) == ["a-1", "a-2", "b-1"]
    assert merged["text"] == "[bob] Notes: from alice"
    # The server converged too: a newcomer gets the same document.
    fresh = await (await joined(driver, "fresh", inkroom, board)).read()
    assert fresh.content == merged
    assert fresh.state_vector == after_a.state_vector


async def test_document_survives_server_restart(
    start_server: StartServer, node: OpenDriver, board: str
) -> None:
    # Saves are debounced far beyond the test: at SIGTERM the edits are unsaved, and only
    # the shutdown flush can keep them.
    inkroom = await start_server(
        env={"INKROOM_SAVE_DEBOUNCE": "30", "INKROOM_SAVE_MAX_DELAY": "60"}
    )
    driver = await node()
    writer = await joined(driver, "writer", inkroom, board)
    await writer.map_set("title", "Persisted")
    await writer.array_push("s-1", "s-2")
    await writer.text_insert("kept across restarts")
    expected = {
        "map": {"title": "Persisted"},
        "array": ["s-1", "s-2"],
        "text": "kept across restarts",
    }
    witness = await joined(driver, "witness", inkroom, board)
    await witness.wait(content=expected)
    # No client may carry the content over the restart and resync it into the new server.
    await writer.destroy()
    await witness.destroy()

    assert await inkroom.stop(), "the server did not exit after SIGTERM"
    await inkroom.start()

    fresh = await driver.client(
        "fresh", server_url=inkroom.ws_url, room=board, token=inkroom.token(CLASSROOM)
    )
    assert (await fresh.wait(synced=True)).content == expected


async def test_observer_writes_are_rejected_but_its_awareness_flows(
    inkroom: InkroomServer, node: OpenDriver
) -> None:
    # Observers open only their classroom's own documents: a classroom of its own.
    classroom = f"obs{secrets.token_hex(4)}"
    board = f"{classroom}/board"
    driver = await node()
    tutor = await joined(driver, "tutor", inkroom, board, token=inkroom.token(classroom))
    await tutor.map_set("title", "Lesson 1")
    await tutor.text_insert("Welcome")
    expected: dict[str, Any] = {"map": {"title": "Lesson 1"}, "array": [], "text": "Welcome"}
    observer = await joined(
        driver, "observer", inkroom, board, token=inkroom.token(classroom, Role.OBSERVER)
    )
    await observer.wait(content=expected)  # observers read the document
    who = {"name": "Olive", "role": "observer"}
    await observer.set_awareness({"user": who, "cursor": {"x": 1, "y": 1}})
    await tutor.wait(present={observer.client_id: {"user": who}})

    await observer.map_set("title", "hijacked")
    await observer.array_push("observer-stroke")
    await observer.text_insert("!!")
    at_denial = await observer.wait(denied=1)
    # The edit was made (Yjs applies it locally); the server is what refused it.
    assert at_denial.content["map"]["title"] == "hijacked"
    # More edits, then a cursor move on the same socket: once the tutor sees the cursor,
    # the server has handled (and refused) every edit sent before it.
    await observer.map_set("observer", "was here")
    await observer.set_awareness({"user": who, "cursor": {"x": 2, "y": 2}})
    await tutor.wait(present={observer.client_id: {"cursor": {"x": 2, "y": 2}}})

    fresh = await joined(driver, "fresh", inkroom, board, token=inkroom.token(classroom))
    seen = await fresh.wait(present={observer.client_id: {"user": who}})
    assert seen.content == expected
    assert observer.client_id not in seen.clocks
    # A later write reaches the tutor through the same ordered outbox any relayed observer
    # update would have used, so it arrives after them.
    await fresh.map_set("marker", "after the observer")
    marker = (await fresh.read()).clocks
    at_marker = await tutor.wait(clocks=marker)
    assert at_marker.content == {
        **expected,
        "map": {**expected["map"], "marker": "after the observer"},
    }
    assert observer.client_id not in at_marker.clocks

    end = await observer.read()
    assert len(end.denied) == 1, "permission-denied is sent once per connection"
    assert end.closes == []
    assert end.status == "connected"


@pytest.mark.parametrize(
    ("kind", "code"),
    [
        ("garbage", UNAUTHORIZED),
        ("missing", UNAUTHORIZED),
        ("foreign-secret", UNAUTHORIZED),
        ("expired", UNAUTHORIZED),
        ("other-classroom", FORBIDDEN),
    ],
)
async def test_bad_token_gets_no_document(
    inkroom: InkroomServer, node: OpenDriver, board: str, kind: str, code: int
) -> None:
    tokens: dict[str, str | None] = {
        "garbage": "not.a-jwt",
        "missing": None,
        "foreign-secret": inkroom.token(CLASSROOM, secret=secrets.token_urlsafe(48)),
        "expired": inkroom.token(CLASSROOM, ttl=3600, now=time.time() - 7200),
        "other-classroom": inkroom.token("c2"),
    }
    driver = await node()
    owner = await joined(driver, "owner", inkroom, board)
    await owner.map_set("answers", "for tutors only")
    await owner.text_insert("secret")
    witness = await joined(driver, "witness", inkroom, board)
    await witness.wait(
        content={"map": {"answers": "for tutors only"}, "array": [], "text": "secret"}
    )

    intruder = await driver.client(
        "intruder", server_url=inkroom.ws_url, room=board, token=tokens[kind], max_backoff_ms=300
    )
    closed = await intruder.wait(terminal=1, status="disconnected")
    assert [c.code for c in closed.closes] == [code]
    assert [c.code for c in closed.terminal] == [code]

    after = await intruder.outlast_reconnect()
    assert after.sockets == 1, "the provider opened another connection"
    assert after.statuses.count("connecting") == 1
    assert after.status == "disconnected"
    assert not after.should_connect
    assert after.sync_events == 0
    assert not after.synced
    assert after.content == EMPTY
    assert after.clocks == {}
    assert set(after.awareness) == {intruder.client_id}


async def test_killed_client_presence_disappears_within_two_seconds(
    inkroom: InkroomServer, node: OpenDriver, board: str
) -> None:
    victim_driver = await node("victim")
    watcher_driver = await node("watcher")
    victim = await joined(victim_driver, "victim", inkroom, board)
    watcher = await joined(watcher_driver, "watcher", inkroom, board)
    presence = {"user": {"name": "Vic"}, "cursor": {"x": 5, "y": 8}}
    await victim.set_awareness(presence)
    await watcher.set_awareness({"user": {"name": "Wanda"}})
    await watcher.wait(present={victim.client_id: presence})

    started = time.monotonic()
    await victim_driver.kill()  # SIGKILL: no close frame, no null awareness state
    gone = await watcher.wait(absent=[victim.client_id], deadline=5.0)
    elapsed = time.monotonic() - started

    assert elapsed < 2.0, f"the dead client's presence lingered {elapsed:.2f} s"
    assert gone.status == "connected"
    assert gone.closes == []
    late = await joined(watcher_driver, "late", inkroom, board)
    seen = await late.wait(present={watcher.client_id: {"user": {"name": "Wanda"}}})
    assert victim.client_id not in seen.awareness
