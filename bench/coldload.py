"""Cold load and write amplification of a lesson-sized board (issue 13, item 6).

A real ``inkroom serve`` (SQLite in its data dir, or PostgreSQL in a throwaway schema)
takes a lesson of live ink from stock y-websocket clients (``bench/coldload_lesson.mjs``)
until they have sent ``--mb`` MB of updates. Then, for each backend:

- **mid-lesson load**: the store's ``load`` + building the document, measured in this
  process while the room is still loaded (the tail as the lesson left it), then on a node:
  the node is restarted (all saved, nothing folded) and a client joins (its
  ``inkroom_load_seconds``: what a board reloaded mid-lesson costs);
- that client leaves, the room unloads (``INKROOM_UNLOAD_GRACE``) and is folded;
  **write amplification** = bytes the store wrote (log + every snapshot, from both nodes'
  ``inkroom_store_*_bytes_total`` counters) / update bytes the clients sent;
- **cold load after compaction**: ``load`` + building the document here (median of
  ``--repeats``), and a fresh node's own load time for the first join
  (``inkroom_load_seconds``), with the time the joining client waits for its sync.

    python bench/coldload.py [--backend sqlite|postgres|both] [--mb 5] [--writers 8]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import (
    BENCH,
    HOST,
    INKROOM,
    WORK,
    Server,
    free_port,
    install_cleanup,
    load_argument,
    load_avg,
    source_state,
)
from collab.adapters.sql_store import SqlStore
from collab.ports import DocumentName
from server.db import make_engine

PG_URL = os.environ.get("INKROOM_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")
ROOM = "coldloadboard"


def scrape(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://{HOST}:{port}/metrics", timeout=10) as resp:
        body = resp.read().decode()
    out: dict[str, float] = {}
    for line in body.splitlines():
        m = re.match(r"^([a-z_]+)(\{[^}]*\})? ([0-9.e+-]+)$", line)
        if m and not m.group(2):
            out[m.group(1)] = float(m.group(3))
    return out


def wait_for(what: str, check: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} not within {timeout:g} s")
        time.sleep(0.2)


def settle(port: int, keys: tuple[str, ...], quiet: float = 1.5, timeout: float = 120) -> None:
    """Until the counters ``keys`` stop moving for ``quiet`` seconds."""
    last = {k: scrape(port).get(k, 0.0) for k in keys}
    still_since = time.monotonic()
    deadline = still_since + timeout
    while time.monotonic() - still_since < quiet:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{keys} still moving after {timeout:g} s")
        time.sleep(0.25)
        now = {k: scrape(port).get(k, 0.0) for k in keys}
        if now != last:
            last, still_since = now, time.monotonic()


def direct_load(url: str, repeats: int) -> dict[str, Any]:
    """``Store.load`` + ``LoadedDocument.to_doc`` in this process, as a node's load does."""
    engine = make_engine(url)
    store = SqlStore(engine)
    read, apply, total = [], [], []
    tail = snapshot = 0
    try:
        for _ in range(repeats):
            t0 = time.perf_counter()
            loaded = asyncio.run(store.load(DocumentName(ROOM)))
            t1 = time.perf_counter()
            loaded.to_doc()
            t2 = time.perf_counter()
            read.append(t1 - t0)
            apply.append(t2 - t1)
            total.append(t2 - t0)
            tail, snapshot = len(loaded.tail), len(loaded.snapshot or b"")
    finally:
        engine.dispose()

    def ms(xs: list[float]) -> float:
        return round(statistics.median(xs) * 1000, 1)

    return {
        "ms": ms(total),
        "read_ms": ms(read),
        "apply_ms": ms(apply),
        "tail_entries": tail,
        "snapshot_bytes": snapshot,
    }


def node_join(server: Server) -> dict[str, Any]:
    """A fresh node's load for its first join, and that client's wait for its sync."""
    code = (
        "import { readDocument } from './tests/e2e/lib/yclient.mjs';"
        "const t = performance.now();"
        f"const r = await readDocument('ws://{HOST}:{server.port}/ws', {json.dumps(ROOM)},"
        f" {json.dumps(server.tokens[ROOM][0])}, {{ timeout: 60000 }});"
        "console.log(JSON.stringify({ ms: performance.now() - t }));"
        "process.exit(0)"
    )
    out = subprocess.run(
        ["node", "--input-type=module", "-e", code],
        cwd=BENCH.parent,
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    synced_ms = json.loads(out.strip().splitlines()[-1])["ms"]
    metrics = scrape(server.port)
    return {
        "server_load_ms": round(metrics["inkroom_load_seconds_sum"] * 1000, 1),
        "join_to_synced_ms": round(synced_ms, 1),
    }


def run_backend(backend: str, args: argparse.Namespace) -> dict[str, Any]:
    workdir = WORK / f"coldload-{backend}"
    shutil.rmtree(workdir, ignore_errors=True)
    (workdir / "data").mkdir(parents=True)
    env = {"INKROOM_UNLOAD_GRACE": str(args.unload_grace)}
    drop = None
    if backend == "postgres":
        schema = f"inkroom_coldload_{secrets.token_hex(4)}"
        admin = create_engine(
            PG_URL.replace("postgresql://", "postgresql+psycopg://"), isolation_level="AUTOCOMMIT"
        )
        with admin.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))

        def drop() -> None:
            with admin.connect() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()

        url = f"{PG_URL}?options=-csearch_path%3D{schema}"
        env["INKROOM_DATABASE_URL"] = url
    else:
        url = f"sqlite:///{(workdir / 'data' / 'inkroom.db').resolve()}"
    saved_env = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        return measure(workdir, url, args)
    finally:
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        if drop is not None:
            drop()


def measure(workdir: Path, url: str, args: argparse.Namespace) -> dict[str, Any]:
    keys = ("inkroom_store_log_bytes_total", "inkroom_store_snapshot_bytes_total")
    server = Server(INKROOM, free_port(), workdir)
    server.issue_tokens([ROOM], args.writers)
    server.start()
    try:
        config = {
            "urls": [server.url(ROOM, i) for i in range(args.writers)],
            "reader_url": server.url(ROOM, args.writers),
            "target_bytes": int(args.mb * 1_000_000),
            "interval_ms": args.interval_ms,
        }
        done = subprocess.run(
            ["node", str(BENCH / "coldload_lesson.mjs"), load_argument(workdir, config)],
            cwd=BENCH.parent,
            check=True,
            capture_output=True,
            text=True,
            timeout=1800,
        )
        lesson = json.loads(done.stdout.strip().splitlines()[-1])
        # Saves (and any compaction they start) finish while the room is still loaded.
        settle(server.port, (*keys, "inkroom_compactions_total"))
        mid = direct_load(url, 1)
        lesson_node = scrape(server.port)
    finally:
        # A stop with the board still loaded: everything is saved, nothing folded at
        # unload (what a node restart or a crash after the last save leaves).
        server.stop()
    # The board loads again on a node (its tail as the lesson left it), then everyone
    # leaves: it unloads, and is folded.
    again = Server(INKROOM, free_port(), workdir)
    again.issue_tokens([ROOM], 1)
    again.start()
    try:
        reload = node_join(again)
        wait_for("unload", lambda: scrape(again.port).get("inkroom_rooms", 1) == 0, 300)
        settle(again.port, (*keys, "inkroom_compactions_total"))
        unload_node = scrape(again.port)
    finally:
        again.stop()
    cold = direct_load(url, args.repeats)
    fresh = Server(INKROOM, free_port(), workdir)
    fresh.issue_tokens([ROOM], 1)
    fresh.start()
    try:
        joined = node_join(fresh)
    finally:
        fresh.stop()
    sent = lesson["sent_bytes"]
    both = (lesson_node, unload_node)
    log_bytes = sum(c.get(keys[0], 0.0) for c in both)
    snap_bytes = sum(c.get(keys[1], 0.0) for c in both)
    bytes_in = lesson_node.get("inkroom_bytes_in_total", 0.0)
    return {
        "lesson": lesson,
        "log_bytes": int(log_bytes),
        "snapshot_bytes_written": int(snap_bytes),
        "compactions": [int(c.get("inkroom_compactions_total", 0)) for c in both],
        "write_amplification": round((log_bytes + snap_bytes) / sent, 3),
        # Against the sync messages as the node received them (their framing included).
        "bytes_in": int(bytes_in),
        "write_amplification_vs_bytes_in": round((log_bytes + snap_bytes) / max(1, bytes_in), 3),
        "mid_lesson_load": mid,
        "mid_lesson_node": reload,
        "cold_load": cold,
        "node": joined,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--mb", type=float, default=5.0, help="update MB the clients send")
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--interval-ms", type=float, default=2.0, help="each writer's flush")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--unload-grace", type=float, default=3.0)
    args = parser.parse_args()
    install_cleanup()
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    print(f"source: {source_state()}; load average before: {load_avg()}", file=sys.stderr)
    for backend in backends:
        result = run_backend(backend, args)
        result["backend"] = backend
        result["load_average_after"] = load_avg()
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
