"""Relay across two Inkroom nodes through Redis, beside the single-node relay.

Usage: python bench/multinode.py [--quick] [--rounds N] [--cases A-rate A-sat]
       [--redis-url redis://127.0.0.1:6379/0]

Same load as ``bench/relay.py`` (``bench/load.mjs``: one writer and R readers per room).
Each case runs twice, back to back so the ratio shares the machine's conditions:

* ``single``: one node (``--redis-url`` unset); writer and readers on it;
* ``2-nodes``: two nodes on Redis; the writer on node A, every reader on node B, so every
  update crosses Redis once.

Reported per run: delivered updates/s at readers, CPU microseconds per delivered update
of *all* server processes, p50/p99 writer-to-reader latency, and for the two-node run the
Redis PUBLISH commands per written update and per delivered update (from
``INFO commandstats`` before and after, heartbeats and anti-entropy included; only this
benchmark's nodes should be publishing on that Redis).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script

from bench.harness import (
    HOST,
    SECRET,
    WORK,
    ensure_node_modules,
    fmt,
    free_port,
    issue_tokens,
    kill,
    load_argument,
    load_avg,
    spawn,
    wait_listening,
)
from bench.relay import CASES, LOAD, Case, Timing, load_config

ROOT = Path(__file__).resolve().parent.parent


def _publishes(redis_url: str) -> int:
    """Total PUBLISH calls Redis has served (``INFO commandstats``)."""
    code = (
        "import sys, redis; s = redis.Redis.from_url(sys.argv[1]).info('commandstats'); "
        "print(s.get('cmdstat_publish', {}).get('calls', 0))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, redis_url], check=True, capture_output=True, timeout=30
    ).stdout
    return int(out.strip() or 0)


def _node(workdir: Path, name: str, redis_url: str | None, prefix: str) -> tuple[Any, int]:
    port = free_port()
    env = dict(os.environ)
    env.update(
        INKROOM_SECRET=SECRET,
        INKROOM_MESSAGES_PER_SECOND="1000000",
        INKROOM_MESSAGE_BURST="1000000",
        INKROOM_OUTBOX_MESSAGES="100000",
        INKROOM_LOG_LEVEL="WARNING",
        INKROOM_REDIS_PREFIX=prefix,
    )
    if redis_url:
        env["INKROOM_REDIS_URL"] = redis_url
    inkroom = Path(sys.executable).with_name("inkroom")
    argv = [str(inkroom), "serve", "--host", HOST, "--port", str(port)]
    argv += ["--data-dir", str(workdir / name)]
    log = (workdir / f"{name}.log").open("wb")
    proc = spawn(argv, env, stdout=log, stderr=subprocess.STDOUT)
    log.close()
    wait_listening(proc, port)
    return proc, port


def run(layout: str, case: Case, timing: Timing, round_no: int, redis_url: str) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix=f"mn-{layout}-", dir=WORK))
    prefix = f"bench-{secrets.token_hex(4)}"
    procs: list[Any] = []
    load = None
    try:
        two = layout == "2-nodes"
        proc_a, port_a = _node(workdir, "a", redis_url if two else None, prefix)
        procs.append(proc_a)
        port_b = port_a
        if two:
            proc_b, port_b = _node(workdir, "b", redis_url, prefix)
            procs.append(proc_b)
        names = [f"r{round_no}-{case.name}-{i:02d}" for i in range(case.rooms)]
        tokens = issue_tokens(names, case.readers + 1)
        rooms = [
            {
                "name": n,
                "url": f"ws://{HOST}:{port_a}/ws/{n}?token={tokens[n][0]}",
                "reader_urls": [f"ws://{HOST}:{port_b}/ws/{n}?token={t}" for t in tokens[n][1:]],
            }
            for n in names
        ]
        config = load_config(rooms, case, timing, [p.pid for p in procs])
        before = _publishes(redis_url) if two else 0
        load = spawn(
            ["node", str(LOAD), load_argument(workdir, config)],
            dict(os.environ),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        budget = timing.connect_timeout_s + timing.warmup_s + timing.measure_s + timing.drain_s
        out, err = load.communicate(timeout=budget + 30)
        if load.returncode != 0 or not out.strip():
            raise RuntimeError(f"load failed: {err.decode(errors='replace')[-2000:]}")
        result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
        published = _publishes(redis_url) - before if two else 0
        # Whole run (handshakes, warm-up, drain): divide by everything written/delivered.
        result["redis_publishes"] = published
        result["layout"] = layout
        result["case"] = case.name
        return result
    finally:
        if load is not None:
            kill(load, grace=1.0)
        for proc in procs:
            kill(proc)
        shutil.rmtree(workdir, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--cases", nargs="+", default=["A-rate", "A-sat"])
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args(argv)
    timing = Timing(warmup_s=0.5 if args.quick else 1.0, measure_s=2.0 if args.quick else 5.0)
    cases = [c for c in CASES if c.name in args.cases]
    ensure_node_modules()
    WORK.mkdir(exist_ok=True)
    print(f"# multi-node relay: load average at start {load_avg()}", flush=True)
    rows = []
    for round_no in range(args.rounds):
        for case in cases:
            for layout in ("single", "2-nodes"):
                r = run(layout, case, timing, round_no, args.redis_url)
                rows.append(r)
                written = int(r.get("updates_sent_total") or 0)
                # Every reader gets every written update over the whole run.
                delivered_total = written * case.readers
                pub = r["redis_publishes"]
                print(
                    f"round {round_no} {case.name:7s} {layout:8s} "
                    f"{r['delivered_per_s']:>9,.0f} upd/s  "
                    f"{fmt(r['server_cpu_us_per_update'], '.1f'):>6s} us/upd  "
                    f"p50 {fmt(r['p50_ms'], '.2f')} ms  p99 {fmt(r['p99_ms'], '.2f')} ms  "
                    f"redis publishes {pub}"
                    + (f" ({pub / written:.2f}/written" if written else "")
                    + (f", {pub / delivered_total:.3f}/delivered)" if delivered_total else "")
                    + f"  {'ok' if r['verified'] and not r['gaps'] else 'CHECK FAILED'}",
                    flush=True,
                )
    print(f"# load average at end {load_avg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
