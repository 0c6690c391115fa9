"""Costs of issue 12's later parts, side by side with what they add to.

1. Role overrides: microseconds per judged tutor write, without a classroom document (the
   judge as a staff write used to be: role check only) and with one holding 0, 100 or
   10,000 overrides (the lookup is one map read, so it must stay flat).
2. Every node's rooms: milliseconds for one question over real Redis answered by 1, 2 and
   3 nodes, each reply the listing of 50 rooms x 30 connections (about 0.4 MB of JSON).
3. JSON import: building a 2,000-stroke board from its export and planning the forward
   change onto a document (empty: everything new; equal: nothing to do), both in a
   worker thread; the live room only applies the result.

    python bench/admin_cluster.py [--redis redis://127.0.0.1:6379/0] [--rounds 30]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import secrets
import statistics
import time
from typing import Any

from pycrdt import Array, Doc, Map

from collab.adapters.redis_bus import RedisBus
from collab.content import data_kinds, forward_change, from_data, shared_paths, to_data
from collab.ports import DocumentName, Peer
from server.classroom import ClassroomHooks


def _us(fn: Any, n: int) -> float:
    runs = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        runs.append((time.perf_counter() - start) / n * 1e6)
    return statistics.median(runs)


class _Room:
    def __init__(self, name: str, doc: Doc[Any]) -> None:
        self.name = DocumentName(name)
        self.doc = doc


def overrides(n_calls: int = 20_000) -> list[tuple[str, float]]:
    tutor = Peer("t1", "T", "tutor")
    update = b"\x00\x00"  # never parsed: a tutor's write is allowed on its role
    board = _Room("c1/board", Doc())
    staff = {"tutor", "admin"}
    # The judge of a tutor's write before overrides: the read-only flag, then the role.
    before = _us(lambda: tutor.read_only or tutor.role in staff, n_calls)
    rows = [("before overrides (read-only flag, role check)", before)]
    for count in (0, 100, 10_000):
        class_doc: Doc[Any] = Doc()
        state = class_doc.get("state", type=Map)
        with class_doc.transaction():
            for i in range(count):
                state[f"role:s{i}"] = "observer"
        hooks = ClassroomHooks()
        hooks.on_room_loaded(_Room("c1/class", class_doc))  # type: ignore[arg-type]

        def judge(h: ClassroomHooks = hooks) -> None:
            # A stand-in room: a tutor's judge reads only its name.
            h.judge_write(tutor, board, update)  # type: ignore[arg-type]

        cost = _us(judge, n_calls)
        rows.append((f"judge_write with {count:,} overrides in the classroom", cost))
    return rows


def listing_reply(rooms: int = 50, per_room: int = 30) -> bytes:
    conn = {
        "client": 123456789,
        "user_id": "student-0000",
        "name": "A Student",
        "role": "student",
        "read_only": False,
        "node": "node-0-abcd",
        "connected_since": "2026-03-03T09:00:00+00:00",
        "bytes_in": 123456,
        "bytes_out": 654321,
        "outbox_frames": 0,
        "outbox_bytes": 0,
        "device": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120",
        "address": "10.0.0.1",
    }
    listing = [
        {
            "name": f"c{r}/board",
            "node": "n",
            "size": 50_000,
            "clients": per_room,
            "connections": [conn] * per_room,
        }
        for r in range(rooms)
    ]
    return json.dumps({"rooms": listing, "truncated": False}).encode()


async def questions(url: str, rounds: int) -> list[tuple[int, int, float, float]]:
    reply = listing_reply()
    out = []
    for count in (1, 2, 3):
        prefix = f"bench-ask-{secrets.token_hex(3)}"
        buses = [
            RedisBus(url, prefix=prefix, heartbeat_interval=0.2, node_timeout=3)
            for _ in range(count)
        ]
        tasks = [asyncio.create_task(b.run()) for b in buses]
        try:
            for b in buses:
                b.on_ask(lambda q: reply)
            deadline = time.monotonic() + 10
            while not all(b.connected and b.peers == count - 1 for b in buses):
                assert time.monotonic() < deadline, "nodes did not see each other"
                await asyncio.sleep(0.05)
            times = []
            for _ in range(rounds):
                start = time.perf_counter()
                answers = await buses[0].ask(b'{"op": "rooms"}', wait=5)
                times.append((time.perf_counter() - start) * 1000)
                assert not answers.missing
                assert len(answers.replies) == count
            times.sort()
            out.append(
                (count, len(reply), statistics.median(times), times[int(len(times) * 0.95) - 1])
            )
        finally:
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await t
    return out


def imports(strokes: int = 2_000) -> list[tuple[str, float]]:
    doc: Doc[Any] = Doc()
    shapes = doc.get("shapes", type=Map)
    with doc.transaction():
        for i in range(strokes):
            shapes[f"s{i}"] = Map(
                {"t": "p", "pg": "p0", "x": i, "y": i, "pts": Array(list(range(40)))}
            )
    body = json.loads(json.dumps({"content": to_data(doc), "shared": shared_paths(doc)}))
    kinds = data_kinds(body["content"])
    rows = []

    def timed(label: str, fn: Any) -> Any:
        start = time.perf_counter()
        result = fn()
        rows.append((label, (time.perf_counter() - start) * 1000))
        return result

    target = timed("from_data (scratch document from the JSON)", lambda: from_data(**body))
    change = timed(
        "forward change onto an empty document",
        lambda: forward_change(Doc().get_update(), target, kinds),
    )
    live: Doc[Any] = Doc()
    timed("applying it to the live document (on the loop)", lambda: live.apply_update(change))
    same = timed(
        "forward change onto an equal document (none)",
        lambda: forward_change(doc.get_update(), target, kinds),
    )
    assert same == b""
    rows.append((f"JSON size (bytes) for {strokes:,} strokes", float(len(json.dumps(body)))))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    print("| judged tutor write | us |\n|---|---|")
    for label, us in overrides():
        print(f"| {label} | {us:.2f} |")
    print("\n| nodes answering | reply bytes each | median ms | p95 ms |\n|---|---|---|---|")
    for count, size, median, p95 in asyncio.run(questions(args.redis, args.rounds)):
        print(f"| {count} | {size:,} | {median:.1f} | {p95:.1f} |")
    print("\n| JSON import step | ms |\n|---|---|")
    for label, ms in imports():
        print(f"| {label} | {ms:,.1f} |")


if __name__ == "__main__":
    main()
