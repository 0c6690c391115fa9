"""History of a 10,000-update session: page time and state-at-T rebuild time.

Writes a board session of N updates (strokes drawn point batch by point batch by several
authors, shapes moved and erased), saved in batches with periodic compaction as the
server does, to SQLite and to PostgreSQL (a throwaway schema). Then measures:

* paging the whole log by sequence, ``limit`` entries per page (every page timed);
* paging one author's entries, and a one-minute time window;
* the state at random moments T (snapshot plus log), rebuilt into a document.

    python bench/history.py [--updates 10000] [--page 100] [--samples 20] [--pg URL]

Targets (issue 12): every page under 100 ms, every state at T under 500 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import secrets
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pycrdt import Array, Doc, Map
from sqlalchemy import Engine, create_engine, text

from collab.adapters.sql_store import SqlStore
from collab.ports import DocumentName, StoredUpdate
from server.db import make_engine, migrate

NAME = DocumentName("c1/board")
AUTHORS = [f"student-{i}" for i in range(8)] + ["tutor"]
T0 = datetime(2026, 3, 3, 9, 0, tzinfo=UTC)


def session(n: int, seed: int = 7) -> list[StoredUpdate]:
    """``n`` board updates, 200 ms apart, as a lesson would write them."""
    rng = random.Random(seed)
    doc: Doc[Any] = Doc()
    out: list[bytes] = []
    doc.observe(lambda e: out.append(e.update))
    shapes = doc.get("shapes", type=Map)
    live: list[str] = []
    authors: list[str] = []
    while len(out) < n:
        who = rng.choice(AUTHORS)
        roll = rng.random()
        if roll < 0.7 or not live:
            key = f"{len(out)}.{rng.randrange(1000)}"
            shapes[key] = Map({"t": "p", "a": who, "x": rng.randrange(1600), "pts": Array()})
            authors.append(who)
            live.append(key)
            pts = shapes[key]["pts"]
            for _ in range(rng.randrange(1, 6)):
                if len(out) >= n:
                    break
                pts.extend([rng.randrange(-9, 9) for _ in range(12)])
                authors.append(who)
        elif roll < 0.9:
            shapes[rng.choice(live)]["x"] = rng.randrange(1600)
            authors.append(who)
        else:
            del shapes[live.pop(rng.randrange(len(live)))]
            authors.append(who)
    return [
        StoredUpdate(u, authors[i], T0 + timedelta(milliseconds=200 * i))
        for i, u in enumerate(out[:n])
    ]


async def fill(store: SqlStore, updates: list[StoredUpdate]) -> None:
    # Saved as the server saves: a batch per debounce, a snapshot every 1,000 updates.
    for i in range(0, len(updates), 50):
        await store.append({NAME: updates[i : i + 50]})
        if (i + 50) % 1000 == 0:
            await store.compact(NAME)


async def timed(fn: Callable[[], Awaitable[Any]]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = await fn()
    return (time.perf_counter() - started) * 1000, result


async def measure(label: str, store: SqlStore, args: argparse.Namespace) -> dict[str, Any]:
    updates = session(args.updates)
    await fill(store, updates)
    pages: list[float] = []
    after, seen = 0, 0
    while True:
        started = time.perf_counter()
        page = await store.history(NAME, after=after, limit=args.page)
        pages.append((time.perf_counter() - started) * 1000)
        seen += len(page.entries)
        if page.next_after is None:
            break
        after = page.next_after
    assert seen == args.updates, seen
    filtered: list[float] = []
    for author in AUTHORS[:3]:
        started = time.perf_counter()
        await store.history(NAME, limit=args.page, author=author)
        filtered.append((time.perf_counter() - started) * 1000)
    for minute in range(0, args.updates // 300, 5):
        since = T0 + timedelta(minutes=minute)
        started = time.perf_counter()
        await store.history(NAME, limit=args.page, since=since, until=since + timedelta(minutes=1))
        filtered.append((time.perf_counter() - started) * 1000)
    rng = random.Random(11)
    rebuilds: list[float] = []
    for _ in range(args.samples):
        at = T0 + timedelta(milliseconds=200 * rng.randrange(args.updates))

        async def rebuild(at: datetime = at) -> Doc[Any]:
            past = await store.state_at(NAME, at)
            doc: Doc[Any] = Doc()
            doc.apply_update(past.update)
            return doc

        ms, _ = await timed(rebuild)
        rebuilds.append(ms)
    result = {
        "store": label,
        "updates": args.updates,
        "log_bytes": sum(len(u.data) for u in updates),
        "pages": len(pages),
        "page_median_ms": statistics.median(pages),
        "page_max_ms": max(pages),
        "filtered_max_ms": max(filtered),
        "state_at_median_ms": statistics.median(rebuilds),
        "state_at_max_ms": max(rebuilds),
    }
    return result


def pg_engine(url: str) -> tuple[Engine, Callable[[], None]]:
    schema = f"inkroom_bench_{secrets.token_hex(4)}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine = create_engine(url, connect_args={"options": f"-csearch_path={schema}"})

    def drop() -> None:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()

    return engine, drop


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--updates", type=int, default=10_000)
    parser.add_argument("--page", type=int, default=100)
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--pg", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--no-pg", action="store_true")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'bench.db'}")
        migrate(engine)
        results.append(await measure("SQLite", SqlStore(engine), args))
        engine.dispose()
    if not args.no_pg:
        engine, drop = pg_engine(args.pg)
        try:
            migrate(engine)
            results.append(await measure("PostgreSQL", SqlStore(engine), args))
        finally:
            drop()
    print(
        "| store | updates | log bytes | pages | page median / max (ms) "
        "| filtered page max (ms) | state at T median / max (ms) |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['store']} | {r['updates']:,} | {r['log_bytes']:,} | {r['pages']} "
            f"| {r['page_median_ms']:.1f} / {r['page_max_ms']:.1f} "
            f"| {r['filtered_max_ms']:.1f} "
            f"| {r['state_at_median_ms']:.1f} / {r['state_at_max_ms']:.1f} |"
        )


if __name__ == "__main__":
    asyncio.run(main())
