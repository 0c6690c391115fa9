"""One regression test per finding of the adversarial review (issue 6), each against a live
server with raw y-websocket frames. docs/security.md maps findings to defences."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import sqlite3
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import websockets
from pycrdt import Array, Doc, Map

from collab.awareness import Entry as AwarenessEntry
from collab.awareness import decode_entries, encode_entries
from collab.protocol import AwarenessMessage, PermissionDenied, SyncStep1, decode
from collab.updates import decode_state_vector
from server.auth import Role
from server.http_protocol import InkroomH11Protocol
from server.logs import JsonFormatter
from tests.server.live import live_server, settings_for
from tests.server.wspeer import WsPeer

from .conftest import SECRET, token, ws_url
from .raw import RawClient, awareness_frame, hello, pending_delete, update_frame

pytestmark = pytest.mark.anyio


def http(server: str, path: str) -> tuple[int, dict[str, str], bytes]:
    url = server.replace("ws://", "http://") + path
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        with e:
            return e.code, dict(e.headers), e.read()


async def denied(client: RawClient, deadline: float = 5.0) -> None:
    """Waits until the server has told ``client`` a write was not taken."""
    await client.until(
        lambda: any(isinstance(decode(f), PermissionDenied) for f in client.frames), deadline
    )


def put(root: str, key: str, value: Any) -> Callable[[Doc[Any]], None]:
    def change(doc: Doc[Any]) -> None:
        doc.get(root, type=Map)[key] = value

    return change


def hand_is(doc: Doc[Any], user: str, value: float) -> Callable[[], bool]:
    return lambda: doc.get("hands", type=Map).get(user) == value


def chat(doc: Doc[Any]) -> list[Any]:
    return doc.get("chat", type=Array).to_py() or []


def state(doc: Doc[Any]) -> dict[str, Any]:
    return doc.get("state", type=Map).to_py() or {}


# -- 1. pending delete sets --------------------------------------------------------------


async def test_f1_a_pending_delete_set_cannot_erase_anyones_future_writes(server: str) -> None:
    async with (
        WsPeer(ws_url(server, "c1/class", Role.TUTOR, "tutor")) as tutor,
        WsPeer(ws_url(server, "c1/class", Role.STUDENT, "ann")) as ann,
        RawClient(ws_url(server, "c1/class", Role.STUDENT, "eve")) as eve,
    ):
        await eve.send(hello())
        await tutor.edit(lambda d: d.get("chat", type=Array).append({"id": "0", "userId": "tutor"}))
        await ann.until(lambda: len(chat(ann.doc)) == 1)
        # Eve reads the victims' client ids and next clocks from the state vector and
        # names a million future clocks of each in a delete set with no structs.
        for victim in (tutor, ann):
            sv = decode_state_vector(victim.doc.get_state())
            client = victim.doc.client_id
            await eve.send(pending_delete(client, sv.get(client, 0), 1_000_000))
        await denied(eve)
        await tutor.edit(lambda d: d.get("state", type=Map).update({"boardLocked": True}))
        await tutor.edit(lambda d: d.get("chat", type=Array).append({"id": "1", "userId": "tutor"}))
        await ann.edit(lambda d: d.get("hands", type=Map).update({"ann": 1.0}))
        await tutor.until(lambda: "ann" in (tutor.doc.get("hands", type=Map).to_py() or {}))
        # (While Ann is here: the server lowers a student's hand when they leave.)
        async with WsPeer(ws_url(server, "c1/class", Role.OBSERVER, "fresh")) as fresh:
            await fresh.until(lambda: len(chat(fresh.doc)) == 2)
            assert state(fresh.doc) == {"boardLocked": True}
            assert fresh.doc.get("hands", type=Map).to_py() == {"ann": 1.0}


# -- 2 and 8. one document's failure is its own; readiness says so ------------------------


async def test_f2_f8_a_failing_document_never_stops_other_saves_and_readyz_names_it(
    server: str, data_dir: Path
) -> None:
    long_name = "c1/" + "x" * 902
    async with RawClient(ws_url(server, long_name, Role.TUTOR, "t")) as refused:
        assert await refused.wait_closed() == 4403
    async with WsPeer(ws_url(server, "c1/board", Role.TUTOR, "t1")) as t1:
        await t1.edit(lambda d: d.get("shapes", type=Map).update({"warmup": 1.0}))
        await _until_stored(data_dir, "c1/board", 1)
        # A real store failure for one document: SQLite refuses its rows from now on.
        with sqlite3.connect(data_dir / "inkroom.db") as db:
            db.execute(
                "CREATE TRIGGER fail BEFORE INSERT ON collab_update "
                "WHEN NEW.document = 'c2/board' BEGIN SELECT RAISE(ABORT, 'disk says no'); END"
            )
        async with WsPeer(ws_url(server, "c2/board", Role.TUTOR, "t2", classroom="c2")) as t2:
            await t2.edit(lambda d: d.get("shapes", type=Map).update({"lost?": 1.0}))
            for i in range(5):
                await t1.edit(put("shapes", f"s{i}", 1.0))
            await _until_stored(data_dir, "c1/board", 6)
            deadline = time.monotonic() + 5
            while True:
                status, _, body = await asyncio.to_thread(http, server, "/readyz")
                report = json.loads(body)
                if report["status"] == "degraded":
                    break
                assert time.monotonic() < deadline, report
                await asyncio.sleep(0.05)
            assert status == 200
            assert report["degraded"]["saves_failing"] == ["c2/board"]
            # The failing document is kept in memory: its content is still served.
            async with WsPeer(ws_url(server, "c2/board", Role.TUTOR, "t3", classroom="c2")) as t3:
                assert "lost?" in t3.doc.get("shapes", type=Map).to_py()


async def _until_stored(data_dir: Path, name: str, rows: int) -> None:
    deadline = time.monotonic() + 10
    while True:
        with sqlite3.connect(data_dir / "inkroom.db") as db:
            n = db.execute("SELECT count(*) FROM collab_update WHERE document = ?", (name,))
            if n.fetchone()[0] >= rows:
                return
        assert time.monotonic() < deadline, f"{name} never reached {rows} stored updates"
        await asyncio.sleep(0.05)


# -- 3. a client that never reads --------------------------------------------------------


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


async def test_f3_a_non_reader_cannot_pin_full_state_replies(server: str) -> None:
    async with WsPeer(ws_url(server, "c1/board", Role.TUTOR, "tutor")) as tutor:
        await tutor.edit(lambda d: d.get("shapes", type=Map).update({"big": "x" * 750_000}))
        before = _rss()
        ws = await websockets.connect(
            ws_url(server, "c1/board", Role.OBSERVER, "hog"), max_size=None, max_queue=1
        )
        try:
            frame = bytes(SyncStep1(Doc().get_state()))
            with _suppress_closed():
                for _ in range(1000):
                    await ws.send(frame)
            # Other rooms keep their pace meanwhile.
            async with (
                WsPeer(ws_url(server, "c1/class", Role.TUTOR, "t")) as a,
                WsPeer(ws_url(server, "c1/class", Role.STUDENT, "s")) as b,
            ):
                started = time.monotonic()
                await a.edit(lambda d: d.get("chat", type=Array).append({"id": "1"}))
                await b.until(lambda: len(chat(b.doc)) == 1, deadline=2)
                assert time.monotonic() - started < 1.0
        finally:
            await ws.close()
        grown = _rss() - before
        assert grown < 150 * 1024 * 1024, f"server grew {grown / 2**20:.0f} MiB"


class _suppress_closed:
    def __enter__(self) -> None:
        return None

    def __exit__(self, et: type[BaseException] | None, *rest: object) -> bool:
        return et is not None and issubclass(et, websockets.ConnectionClosed)


# -- 4. junk roots in the class document -------------------------------------------------


async def test_f4_a_junk_root_is_never_created_and_hand_raises_stay_fast(server: str) -> None:
    async with (
        WsPeer(ws_url(server, "c1/class", Role.TUTOR, "tutor")) as tutor,
        WsPeer(ws_url(server, "c1/class", Role.STUDENT, "eve")) as eve,
    ):
        await eve.edit(
            lambda d: d.get("junk", type=Map).update({f"k{i}": i for i in range(20_000)})
        )
        took = []
        for i in range(20):
            started = time.monotonic()
            await eve.edit(put("hands", "eve", float(i)))
            await tutor.until(hand_is(tutor.doc, "eve", float(i)))
            took.append(time.monotonic() - started)
        # Generous bounds for a loaded 2-core CI machine; a write's policy cost no longer
        # depends on the document (bench/policy.py: ~15 us at any size).
        # The first raise waits behind the junk update itself (parsed once, O(its size));
        # the ones after it are what the finding was about: 430 ms each, stalling the node.
        later = sorted(took[1:])
        assert later[len(later) // 2] < 0.2, f"median hand raise {later[len(later) // 2]:.3f} s"
        assert later[-1] < 2.0, f"a hand raise took {later[-1]:.3f} s"
        async with WsPeer(ws_url(server, "c1/class", Role.OBSERVER, "fresh")) as fresh:
            await fresh.until(lambda: fresh.doc.get("hands", type=Map).get("eve") == 19.0)
            assert "junk" not in set(fresh.doc.keys())


# -- 5. one token cannot crowd out other classrooms --------------------------------------


async def test_f5_students_open_only_their_classrooms_documents(server: str) -> None:
    for name in ("c1/anything", "c1", "c1/board/2"):
        async with RawClient(ws_url(server, name, Role.STUDENT, "eve")) as eve:
            assert await eve.wait_closed() == 4404
    # A tutor may open more, up to the classroom's share of the node.
    codes = []
    for i in range(34):
        async with RawClient(ws_url(server, f"c1/notes{i}", Role.TUTOR, "t")) as c:
            with _suppress_closed():
                await c.send(hello())
            try:
                codes.append(await c.wait_closed(0.3))
            except TimeoutError:
                codes.append(None)
    assert codes[:30] == [None] * 30
    assert 4429 in codes
    async with WsPeer(ws_url(server, "c2/board", Role.TUTOR, "other", classroom="c2")):
        pass


# -- 6. awareness floods -----------------------------------------------------------------


async def test_f6_awareness_floods_are_bounded_per_user_across_reconnects(server: str) -> None:
    async with RawClient(ws_url(server, "c1/class", Role.STUDENT, "reader")) as reader:
        await reader.send(hello())
        codes = []
        for attempt in range(2):
            async with RawClient(ws_url(server, "c1/class", Role.STUDENT, "flood")) as flooder:
                states = [
                    AwarenessEntry(1000 + i, attempt * 1000 + 1, json.dumps({"p": "x" * 3000}))
                    for i in range(8)
                ]
                frame = awareness_frame(encode_entries(states))
                with _suppress_closed():
                    for _ in range(400):
                        states = [AwarenessEntry(e.client_id, e.clock + 1, e.state) for e in states]
                        await flooder.send(awareness_frame(encode_entries(states)))
                        if flooder.closed.is_set():
                            break
                codes.append(await flooder.wait_closed())
                del frame
        received = sum(len(f) for f in reader.frames)
    assert codes == [1008, 1008]
    # 128 KiB burst + 32 KiB/s for the seconds the test runs, not 400 x 24 KB x 2.
    assert received < 1024 * 1024, f"reader got {received} bytes"


# -- 7. reverted writes never fill the size budget ----------------------------------------


@pytest.fixture
def small_server(tmp_path: Path) -> Iterator[str]:
    with live_server(settings_for(tmp_path, SECRET, max_document_bytes=300_000)) as url:
        yield url


async def test_f7_refused_writes_are_not_counted_toward_the_size_cap(small_server: str) -> None:
    server = small_server
    async with (
        WsPeer(ws_url(server, "c1/class", Role.TUTOR, "tutor")) as tclass,
        WsPeer(ws_url(server, "c1/board", Role.TUTOR, "tutor")) as tboard,
        WsPeer(ws_url(server, "c1/class", Role.STUDENT, "eve")) as eclass,
        WsPeer(ws_url(server, "c1/board", Role.STUDENT, "eve")) as eboard,
    ):
        await tclass.edit(lambda d: d.get("state", type=Map).update({"boardLocked": True}))
        await eclass.until(lambda: state(eclass.doc).get("boardLocked") is True)
        for i in range(20):  # 1 MB of strokes on a locked board, against a 300 kB cap
            await eboard.edit(put("shapes", f"j{i}", "y" * 50_000))
        await tboard.edit(lambda d: d.get("shapes", type=Map).update({"tutor": "z" * 100_000}))
    async with WsPeer(ws_url(server, "c1/board", Role.OBSERVER, "fresh")) as fresh:
        await fresh.until(lambda: "tutor" in fresh.doc.get("shapes", type=Map).to_py())
        assert set(fresh.doc.get("shapes", type=Map).to_py()) == {"tutor"}
        assert len(fresh.doc.get_update()) < 120_000


# -- 9. unauthenticated sockets -----------------------------------------------------------


async def test_f9_partial_or_oversized_request_heads_are_closed(
    server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(InkroomH11Protocol, "head_timeout", 0.5)
    host, port = server.removeprefix("ws://").split(":")

    def exchange(payload: bytes) -> tuple[bytes, float]:
        started = time.monotonic()
        with socket.create_connection((host, int(port)), timeout=5) as s:
            s.sendall(payload)
            data = b""
            while chunk := s.recv(4096):
                data += chunk
        return data, time.monotonic() - started

    answer, _ = await asyncio.to_thread(exchange, b"GET /ws/c1?x=" + b"a" * 9000 + b" HTTP/1.1\r\n")
    assert answer.startswith(b"HTTP/1.1 400")
    answer, took = await asyncio.to_thread(exchange, b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    assert answer == b""
    assert took < 3.0


# -- 10. identity comes from the token ---------------------------------------------------


async def test_f10_presence_chat_and_invites_carry_the_tokens_identity(server: str) -> None:
    async with (
        RawClient(ws_url(server, "c1/class", Role.OBSERVER, "watcher")) as watcher,
        WsPeer(ws_url(server, "c1/class", Role.TUTOR, "tutor")) as tutor,
    ):
        await watcher.send(hello())
        eve_url = f"{server}/ws/c1/class?token={token(Role.STUDENT, 'eve', name='Eve')}"
        async with RawClient(eve_url) as eve:
            forged = {"u": "tutor", "n": "Teacher", "r": "tutor", "q": 0}
            await eve.send(
                awareness_frame(encode_entries([AwarenessEntry(42, 1, json.dumps(forged))]))
            )
            await eve.send(update_frame(_chat_line("tutor", "Teacher")))
            await eve.send(update_frame(_chat_line("eve", "Teacher")))
            await denied(eve)
            seen = await _presence(watcher, 42)
            assert (seen["u"], seen["n"], seen["r"]) == ("eve", "Eve", "student")
        # Eve is gone; Mallory cannot take over id 42 while it is reserved for Eve.
        async with RawClient(ws_url(server, "c1/class", Role.STUDENT, "mallory")) as mallory:
            taken = {"u": "x", "n": "x", "r": "student", "q": 0}
            await mallory.send(
                awareness_frame(encode_entries([AwarenessEntry(42, 99, json.dumps(taken))]))
            )
            await mallory.send(
                awareness_frame(encode_entries([AwarenessEntry(7, 1, json.dumps(taken))]))
            )
            seen = await _presence(watcher, 7)
            assert seen["u"] == "mallory"
            assert all(e.state == "null" for e in _entries(watcher, 42) if e.clock > 1)
        await tutor.edit(lambda d: d.get("chat", type=Array).append({"id": "b", "userId": "tutor"}))
        await tutor.until(lambda: len(chat(tutor.doc)) >= 1)
        assert [m["id"] for m in chat(tutor.doc)] == ["b"]
    # Invite links carry no identity: joining mints a user id on the server from the
    # device grant (tests/server/test_accounts*.py); the body's only field is a name.


def _chat_line(user: str, name: str) -> bytes:
    doc: Doc[Any] = Doc()
    doc.get("chat", type=Array).append({"id": f"forged-{user}", "userId": user, "name": name})
    return doc.get_update()


def _entries(client: RawClient, client_id: int) -> list[AwarenessEntry]:
    out = []
    for f in client.frames:
        m = decode(f)
        if isinstance(m, AwarenessMessage):
            out += [
                e
                for e in decode_entries(m.payload, max_state_bytes=1 << 20)
                if e.client_id == client_id
            ]
    return out


async def _presence(client: RawClient, client_id: int) -> dict[str, Any]:
    await client.until(lambda: any(not e.removed for e in _entries(client, client_id)))
    live = [e for e in _entries(client, client_id) if not e.removed]
    result: dict[str, Any] = json.loads(live[-1].state)
    return result


# -- 11. leaks and headers ----------------------------------------------------------------


async def test_f11_tokens_never_reach_logs_and_pages_carry_security_headers(server: str) -> None:
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep(level=logging.DEBUG)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    jwt = token(Role.STUDENT, "eve")
    try:
        # Parsed once, keys matched exactly after decoding: ``%74oken`` is ``token``.
        async with RawClient(f"{server}/ws/c1/board?%74oken={jwt}") as c:
            await c.until(lambda: bool(c.frames))
        for query in (f"TOKEN={jwt}", f"token={jwt}x"):
            async with RawClient(f"{server}/ws/c1/board?{query}") as c:
                assert await c.wait_closed() == 4401
        async with RawClient(f"{server}/ws/c1%2Fboard%0A?token={jwt}") as c:
            assert await c.wait_closed() in (4403, 4404)
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
    formatter = JsonFormatter()
    lines = [formatter.format(r) for r in records]
    assert lines, "the refusals are logged"
    assert not [line for line in lines if jwt[:40] in line]
    status, headers, _ = await asyncio.to_thread(http, server, "/healthz")
    lowered = {k.lower(): v for k, v in headers.items()}
    assert status == 200
    assert "frame-ancestors 'none'" in lowered["content-security-policy"]
    assert lowered["x-content-type-options"] == "nosniff"
    assert lowered["referrer-policy"] == "no-referrer"


async def test_f11_refused_strokes_are_never_broadcast_even_for_an_instant(server: str) -> None:
    marker = "NEVER-SEEN-" * 20
    async with (
        WsPeer(ws_url(server, "c1/class", Role.TUTOR, "tutor")) as tclass,
        WsPeer(ws_url(server, "c1/class", Role.STUDENT, "eve")) as eclass,
        WsPeer(ws_url(server, "c1/board", Role.STUDENT, "eve")) as eboard,
        RawClient(ws_url(server, "c1/board", Role.TUTOR, "tutor")) as watcher,
    ):
        await watcher.send(hello())
        await tclass.edit(lambda d: d.get("state", type=Map).update({"boardLocked": True}))
        await eclass.until(lambda: state(eclass.doc).get("boardLocked") is True)
        await eboard.edit(lambda d: d.get("shapes", type=Map).update({"s": marker}))
        await eboard.until(lambda: "s" not in eboard.doc.get("shapes", type=Map).to_py())
        async with WsPeer(ws_url(server, "c1/board", Role.TUTOR, "t2")) as t2:
            await t2.edit(lambda d: d.get("shapes", type=Map).update({"barrier": 1.0}))
            await watcher.until(lambda: any(b"barrier" in f for f in watcher.frames))
        assert not any(marker.encode() in f for f in watcher.frames)
