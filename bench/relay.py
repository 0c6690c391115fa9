"""Relay benchmark: Inkroom vs the Node reference server vs pycrdt-websocket.

Usage: python bench/relay.py [--quick] [--rounds N] [--servers ...] [--cases ...]

Each case starts every server fresh as a subprocess, one after the other, and drives it
with the same Node load process (``bench/load.mjs``: raw ``ws`` + ``yjs``, one writer
and R readers per room). Cases:

* ``A-rate``: 1 room, 1 writer + 50 readers, writer at a fixed 200 updates/s;
* ``A-sat``: the same room, writer as fast as a window of unacknowledged updates allows;
* ``B-rate``: 30 rooms of 1 writer + 30 readers, each writer at 5 updates/s;
* ``B-sat``: the same rooms, each writer as fast as its window allows.

Per server and case it prints delivered updates per second at readers (counted from the
update content, so merged messages count every update they carry), server CPU
microseconds per delivered update (utime+stime of the server process tree over the
measured window), p50/p99 writer-to-reader latency and the server's RSS at the end;
then the ratios Inkroom/Node and Inkroom/pycrdt-websocket. Every subprocess is killed at
the end of its case, and on any error or interrupt.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script

from bench.harness import (
    BENCH,
    INKROOM,
    NODE,
    PYCRDT,
    SERVER_LABELS,
    WORK,
    Server,
    ensure_node_modules,
    fmt,
    free_port,
    install_cleanup,
    kill,
    load_argument,
    load_avg,
    median,
    ratio,
    source_state,
    spawn,
    stop_py_spy,
)

LOAD = BENCH / "load.mjs"


@dataclass(frozen=True)
class Case:
    name: str
    rooms: int
    readers: int
    mode: str  # "rate" (fixed offered rate per writer) or "window" (saturation)
    rate: float = 0.0  # updates/s per writer, for "rate"
    window: int = 0  # unacknowledged updates per writer, for "window"
    title: str = ""


CASES = [
    Case("A-rate", 1, 50, "rate", rate=200, title="A: 1 writer + 50 readers, 200 upd/s"),
    Case("A-sat", 1, 50, "window", window=64, title="A: 1 writer + 50 readers, saturated"),
    Case("B-rate", 30, 30, "rate", rate=5, title="B: 30 rooms x (1+30), 5 upd/s per writer"),
    Case("B-sat", 30, 30, "window", window=8, title="B: 30 rooms x (1+30), saturated"),
]


@dataclass(frozen=True)
class Timing:
    warmup_s: float
    measure_s: float
    drain_s: float = 10.0  # ends as soon as every reader has everything
    connect_timeout_s: float = 60.0


def load_config(
    rooms: list[dict[str, Any]], case: Case, timing: Timing, server_pid: int | list[int]
) -> dict[str, Any]:
    """``load.mjs``'s config for ``case``: the rooms, the writers' mode, the windows, and
    the server process(es) whose CPU it reads."""
    return {
        "rooms": rooms,
        "readers": case.readers,
        "mode": case.mode,
        "rate": case.rate,
        "window": case.window,
        "items": 8,
        "warmup_s": timing.warmup_s,
        "measure_s": timing.measure_s,
        "drain_s": timing.drain_s,
        "connect_timeout_s": timing.connect_timeout_s,
        "server_pid": server_pid,
        "clk_tck": os.sysconf("SC_CLK_TCK"),
    }


def drive_load(
    server: Server, case: Case, timing: Timing, round_no: int, tag: str = ""
) -> dict[str, Any]:
    """Run ``load.mjs`` with ``case`` against a started server (rooms named by the round,
    the case and ``tag``, so that runs on one server use rooms of their own)."""
    assert server.proc is not None
    names = [f"r{round_no}{tag}-{case.name}-{i:02d}" for i in range(case.rooms)]
    server.issue_tokens(names, case.readers)
    rooms = [server.room_config(name, case.readers) for name in names]
    config = load_config(rooms, case, timing, server.proc.pid)
    load = spawn(
        ["node", str(LOAD), load_argument(server.workdir, config)],
        dict(os.environ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        budget = timing.connect_timeout_s + timing.warmup_s + timing.measure_s + timing.drain_s
        try:
            out, err = load.communicate(timeout=budget + 30)
        except subprocess.TimeoutExpired:
            raise RuntimeError("load process timed out") from None
        if load.returncode != 0 or not out.strip():
            raise RuntimeError(
                f"load process failed ({load.returncode}): {err.decode(errors='replace')[-2000:]}"
                f"\n-- server log --\n{server.log_tail()}"
            )
    finally:
        kill(load, grace=1.0)
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    result["server"] = server.kind
    result["case"] = case.name
    result["round"] = round_no
    result["load_log"] = err.decode(errors="replace").strip()
    return result


def run_case(
    kind: str, case: Case, timing: Timing, round_no: int, profile_dir: Path | None = None
) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix=f"{kind}-", dir=WORK))
    server = Server(kind, free_port(), workdir)
    spy: subprocess.Popen[bytes] | None = None
    try:
        server.start()
        assert server.proc is not None
        if profile_dir is not None and kind in (INKROOM, PYCRDT):
            # Collapsed stacks of the whole run (handshakes included); SIGINT writes them.
            profile_dir.mkdir(parents=True, exist_ok=True)
            out_path = profile_dir / f"{kind}-{case.name}-r{round_no}.txt"
            spy = spawn(
                # --gil: only samples holding the GIL, i.e. Python running (a thread
                # inside send() or epoll_wait() releases it), closer to on-CPU time.
                [
                    "py-spy",
                    "record",
                    "--pid",
                    str(server.proc.pid),
                    "--rate",
                    "250",
                    "--gil",
                    "--nonblocking",
                    "--format",
                    "raw",
                    "--output",
                    str(out_path),
                ],
                dict(os.environ),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        return drive_load(server, case, timing, round_no)
    finally:
        if spy is not None:
            stop_py_spy(spy)
        server.stop()
        # The server's output outlives its data dir: errors during a run are worth reading.
        log = workdir / f"{kind}.log"
        if log.exists():
            (WORK / "logs").mkdir(exist_ok=True)
            shutil.copy(log, WORK / "logs" / f"{kind}-{case.name}-r{round_no}.log")
        shutil.rmtree(workdir, ignore_errors=True)


# -- report ----------------------------------------------------------------------------


COLUMNS: list[tuple[str, str, str]] = [
    ("delivered_per_s", "delivered upd/s", ",.0f"),
    ("frames_per_s", "update frames/s", ",.0f"),
    ("updates_per_frame", "upd/frame", ".2f"),
    ("server_cpu_us_per_update", "server CPU us/upd", ".1f"),
    ("server_cpu_us_per_frame", "server CPU us/frame", ".1f"),
    ("server_cpu_util", "server CPU (cores)", ".2f"),
    ("p50_ms", "p50 ms", ".2f"),
    ("p99_ms", "p99 ms", ".2f"),
    ("server_rss_mb", "server RSS MB", ".1f"),
    ("load_cpu_util", "load proc CPU (cores)", ".2f"),
    ("other_cpu_util", "other jobs CPU (cores)", ".2f"),
]
RATIO_KEYS = [
    ("delivered_per_s", "delivered upd/s"),
    ("server_cpu_us_per_update", "CPU us/upd"),
    ("p50_ms", "p50"),
    ("p99_ms", "p99"),
    ("server_rss_mb", "RSS"),
]


def report(results: list[dict[str, Any]], cases: list[Case], servers: list[str]) -> str:
    for r in results:
        r["server_rss_mb"] = r["server_rss_kb"] / 1024
    lines: list[str] = []
    for case in cases:
        rows = {
            s: [r for r in results if r["case"] == case.name and r["server"] == s] for s in servers
        }
        if not any(rows.values()):
            continue
        rounds = max(len(v) for v in rows.values())
        lines.append(
            f"### {case.name}: {case.title}" + (f" (median of {rounds})" if rounds > 1 else "")
        )
        lines.append("")
        lines.append("| server | " + " | ".join(c[1] for c in COLUMNS) + " | checks |")
        lines.append("|---" * (len(COLUMNS) + 2) + "|")
        med: dict[str, dict[str, float | None]] = {}
        for s in servers:
            if not rows[s]:
                continue
            med[s] = {key: median(rows[s], key) for key, _, _ in COLUMNS}
            ok = all(r["verified"] and not r["gaps"] and not r["closed_early"] for r in rows[s])
            cells = [fmt(med[s][key], spec) for key, _, spec in COLUMNS]
            check = (
                "ok"
                if ok
                else "FAILED: "
                + ", ".join(
                    f"verified={r['verified']} gaps={r['gaps']} closed={r['closed_early']}"
                    for r in rows[s]
                )
            )
            lines.append(f"| {SERVER_LABELS[s]} | " + " | ".join(cells) + f" | {check} |")
        lines.append("")
        if INKROOM in med:
            parts = []
            for other in (NODE, PYCRDT):
                if other not in med:
                    continue
                ratios = ", ".join(
                    f"{label} {ratio(med[INKROOM][key], med[other][key])}"
                    for key, label in RATIO_KEYS
                )
                parts.append(f"Inkroom/{SERVER_LABELS[other].split()[0]}: {ratios}")
            lines.extend(f"- {p}" for p in parts)
            lines.append("")
    return "\n".join(lines)


# -- main ------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="0.5 s warm-up, 2 s measure")
    parser.add_argument("--rounds", type=int, default=1, help="repeat every case (median)")
    parser.add_argument("--warmup", type=float, help="seconds before measuring (default 1)")
    parser.add_argument("--measure", type=float, help="measured seconds (default 5)")
    parser.add_argument(
        "--servers", nargs="+", choices=list(SERVER_LABELS), default=list(SERVER_LABELS)
    )
    parser.add_argument(
        "--cases", nargs="+", choices=[c.name for c in CASES], default=[c.name for c in CASES]
    )
    parser.add_argument("--json", type=Path, help="write every raw result to this file")
    parser.add_argument(
        "--py-spy",
        type=Path,
        metavar="DIR",
        help="profile the Python servers with py-spy (collapsed stacks in DIR); "
        "sampling costs CPU, so do not quote figures from a profiled run",
    )
    args = parser.parse_args(argv)

    timing = Timing(
        warmup_s=args.warmup if args.warmup is not None else (0.5 if args.quick else 1.0),
        measure_s=args.measure if args.measure is not None else (2.0 if args.quick else 5.0),
    )
    cases = [c for c in CASES if c.name in args.cases]
    servers: list[str] = args.servers

    install_cleanup()
    ensure_node_modules()
    WORK.mkdir(exist_ok=True)

    print(
        f"# relay benchmark: warm-up {timing.warmup_s:g} s, measure {timing.measure_s:g} s, "
        f"{args.rounds} round(s); load average at start {load_avg()}",
        flush=True,
    )
    print(f"# inkroom source: {source_state()}", flush=True)
    results: list[dict[str, Any]] = []
    for round_no in range(args.rounds):
        for case in cases:
            # The servers of one case run back to back, so their ratios share conditions;
            # the order rotates every round so that none always goes first.
            shift = round_no % len(servers)
            for kind in servers[shift:] + servers[:shift]:
                result = run_case(kind, case, timing, round_no, args.py_spy)
                results.append(result)
                print(
                    f"round {round_no} {case.name:7s} {kind:8s} "
                    f"{result['delivered_per_s']:>10,.0f} upd/s  "
                    f"{fmt(result['server_cpu_us_per_update'], '.1f'):>6s} us/upd  "
                    f"p50 {fmt(result['p50_ms'], '.2f')} ms  "
                    f"p99 {fmt(result['p99_ms'], '.2f')} ms  "
                    f"rss {result['server_rss_kb'] / 1024:.0f} MB  "
                    f"load cpu {result['load_cpu_util']:.2f}  "
                    f"others {result['other_cpu_util']:.2f}  "
                    f"{'ok' if result['verified'] and not result['gaps'] else 'CHECK FAILED'}",
                    flush=True,
                )
    print(f"# load average at end {load_avg()}\n")
    print(report(results, cases, servers))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
