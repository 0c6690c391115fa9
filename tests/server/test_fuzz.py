"""Thousands of random and mutated frames at a live server: one bad client never hurts a room."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import websockets
from pycrdt import Array, Doc, Map, Text

from collab.adapters.sql_store import SqlStore
from collab.awareness import Entry, encode_entries
from collab.ports import DocumentName
from collab.protocol import AwarenessMessage, QueryAwareness, SyncStep1, SyncStep2, SyncUpdate
from server.auth import Role, issue
from server.db import make_engine

from .live import live_server, settings_for
from .wspeer import WsPeer

pytestmark = pytest.mark.anyio
SECRET = "fuzz-secret-" + "0123456789abcdef" * 4
FRAMES = 2000
BOARD = "c1/board"


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture
def server(data_dir: Path) -> Iterator[str]:
    settings = settings_for(
        data_dir, SECRET, save_debounce=0.01, save_max_delay=0.05, max_message_bytes=256 * 1024
    )
    with live_server(settings) as url:
        yield url


def url(server: str, role: Role, document: str = BOARD, user: str = "u") -> str:
    token = issue(SECRET, classroom="c1", role=role, user_id=user)
    return f"{server}/ws/{document}?token={token}"


def seed_frames() -> list[bytes]:
    """Valid frames of every kind, as material for mutation."""
    doc: Doc[Any] = Doc()
    updates: list[bytes] = []
    doc.observe(lambda e: updates.append(e.update))
    doc.get("m", type=Map)["k"] = "v"
    doc.get("a", type=Array).extend([1, 2, 3])
    doc.get("t", type=Text).insert(0, "hello")
    return [
        bytes(SyncStep1(doc.get_state())),
        bytes(SyncStep1(b"\x00")),
        bytes(SyncStep2(doc.get_update())),
        *(bytes(SyncUpdate(u)) for u in updates),
        bytes(AwarenessMessage(encode_entries([Entry(99, 1, '{"cursor":[1,2]}')]))),
        bytes(QueryAwareness()),
    ]


def mutate(rng: random.Random, seeds: list[bytes]) -> bytes | str:
    kind = rng.randrange(8)
    if kind == 0:
        return rng.randbytes(rng.randrange(0, 64))
    if kind == 1:
        return "text frame " + str(rng.random())
    base = bytearray(rng.choice(seeds))
    if kind == 2:  # truncate
        return bytes(base[: rng.randrange(0, len(base))])
    if kind == 3:  # extend with junk
        return bytes(base + rng.randbytes(rng.randrange(1, 16)))
    if kind == 4:  # declare a huge length
        return bytes(base[:2]) + b"\xff\xff\xff\x0f" + bytes(base[2:])
    if kind == 5:  # an unknown message type
        return bytes([rng.randrange(4, 256)]) + bytes(base[1:])
    for _ in range(rng.randrange(1, 4)):  # flip bytes
        base[rng.randrange(len(base))] = rng.randrange(256)
    return bytes(base)


async def fuzz(server_url: str, rng: random.Random, frames: int) -> dict[str, int]:
    """Sends ``frames`` frames, reconnecting whenever the server closes the connection.

    Each frame is followed by a query-awareness and a wait for the answer (or the close),
    so every frame counted was really processed by the server, in order.
    """
    seeds = seed_frames()
    query = bytes(QueryAwareness())
    stats = {"sent": 0, "closes": 0}
    while stats["sent"] < frames:
        async with websockets.connect(server_url, max_size=None) as ws:
            try:
                while stats["sent"] < frames:
                    await ws.send(mutate(rng, seeds))
                    stats["sent"] += 1
                    await ws.send(query)
                    async with asyncio.timeout(5):
                        while (await ws.recv())[0] != 1:
                            pass
            except websockets.ConnectionClosed as closed:
                code = closed.rcvd.code if closed.rcvd is not None else 0
                stats["closes"] += 1
                stats[f"close-{code}"] = stats.get(f"close-{code}", 0) + 1
    unnamed = {k for k in stats if k.startswith("close-")} - {
        f"close-{c}" for c in (1002, 1003, 1007, 1008, 1009)
    }
    assert not unnamed, f"closes without a named protocol code: {stats}"
    return stats


def stored_content(data_dir: Path, name: str) -> dict[str, Any]:
    engine = make_engine(f"sqlite:///{data_dir / 'inkroom.db'}")
    try:
        loaded = SqlStore(engine)._load(DocumentName(name))
    finally:
        engine.dispose()
    doc = loaded.to_doc()
    return {"m": doc.get("m", type=Map).to_py(), "a": doc.get("pages", type=Array).to_py()}


async def test_fuzzed_frames_never_hurt_the_room_or_the_stored_document(
    server: str, data_dir: Path
) -> None:
    rng = random.Random(20261127)
    async with (
        WsPeer(url(server, Role.TUTOR, user="tutor")) as tutor,
        WsPeer(url(server, Role.STUDENT, user="student")) as student,
    ):
        await tutor.edit(lambda d: d.get("m", type=Map).update({"title": "Lesson 1"}))
        await student.until(lambda: student.doc.get("m", type=Map).to_py() == {"title": "Lesson 1"})
        # Wait for the save, then remember exactly what is stored.
        expected = {"m": {"title": "Lesson 1"}, "a": []}
        deadline = asyncio.get_running_loop().time() + 5
        while stored_content(data_dir, BOARD) != expected:
            assert asyncio.get_running_loop().time() < deadline, "first save never happened"
            await asyncio.sleep(0.02)

        # Observers can reach every code path of the codec but may not write: the stored
        # board must come out byte-for-byte identical in content.
        stats = await asyncio.gather(
            fuzz(url(server, Role.OBSERVER, user="fuzz-1"), rng, FRAMES // 2),
            fuzz(url(server, Role.OBSERVER, user="fuzz-2"), random.Random(7), FRAMES // 2),
        )
        assert sum(s["sent"] for s in stats) == FRAMES
        assert sum(s["closes"] for s in stats) > 100, "the fuzzer should trip many closes"

        # The room still works for the good clients, in both directions.
        # (``pages``: a student writes only the board's own roots.)
        await student.edit(lambda d: d.get("pages", type=Array).append("after the storm"))
        await tutor.until(lambda: tutor.doc.get("pages", type=Array).to_py() == ["after the storm"])
        await tutor.edit(lambda d: d.get("m", type=Map).update({"still": "alive"}))
        await student.until(lambda: "still" in student.doc.get("m", type=Map).to_py())

    final = {"m": {"title": "Lesson 1", "still": "alive"}, "a": ["after the storm"]}
    deadline = asyncio.get_running_loop().time() + 5
    while stored_content(data_dir, BOARD) != final:
        assert asyncio.get_running_loop().time() < deadline, stored_content(data_dir, BOARD)
        await asyncio.sleep(0.02)
    # A fresh client loads exactly that.
    async with WsPeer(url(server, Role.STUDENT, user="late")) as late:
        assert late.doc.get("m", type=Map).to_py() == final["m"]
        assert late.doc.get("pages", type=Array).to_py() == final["a"]


async def test_fuzzed_writers_cannot_break_the_room_for_others(server: str) -> None:
    """Writers' mutated updates may decode as valid Yjs (then they are edits like any
    other); the server must stay up and every client must converge with it."""
    async with (
        WsPeer(url(server, Role.TUTOR, BOARD, "tutor")) as tutor,
        WsPeer(url(server, Role.STUDENT, BOARD, "student")) as student,
    ):
        await tutor.edit(lambda d: d.get("m", type=Map).update({"k": "v"}))
        await student.until(lambda: student.doc.get("m", type=Map).to_py().get("k") == "v")
        await fuzz(url(server, Role.STUDENT, BOARD, "fuzz"), random.Random(3), 500)
        await tutor.edit(lambda d: d.get("m", type=Map).update({"after": 1.0}))
        await student.until(lambda: student.doc.get("m", type=Map).to_py().get("after") == 1.0)
        assert student.doc.get("m", type=Map).to_py()["k"] == "v"
    async with WsPeer(url(server, Role.STUDENT, BOARD, "late")) as late:
        assert late.doc.get("m", type=Map).to_py()["after"] == 1.0
