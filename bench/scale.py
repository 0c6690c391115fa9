"""Core at scale (issue 13): Inkroom vs the Node reference server vs pycrdt-websocket.

Usage: python bench/scale.py [--quick] [--rounds N] [--servers ...] [--cases ...]

Each case starts every server fresh (``bench/harness.py``), one after the other, and
drives it with stock y-websocket clients from Node (``bench/scale.mjs``, and
``bench/load.mjs`` for the classroom load). Cases:

* ``storm``: a board document of about 2 MB (strokes written by one client, identical
  bytes for every server) is preloaded; one client joins alone (time and server CPU),
  then 200 clients join at once: each one's time to the server's SyncStep2 and to the
  whole document (p50/p99) and the server's CPU per join;
* ``idle``: 50 rooms opened, then 1,000 connections spread over them: the server CPU to
  accept and sync them (the "accept cost"), RSS per connection, and the server's CPU %
  while they sit idle for 30 s;
* ``classroom``: 30 classrooms of 1 writer + 30 readers, each writer at 82 updates/s
  (73,800 deliveries/s): CPU per delivered update and writer-to-reader p99;
* ``10k``: on one server, the classroom load alone, then again beside 10,000 idle
  connections (500 rooms of 20, held by separate Node processes bound to several
  loopback source addresses): the classroom's latency with and without them.

Every server and load process gets RLIMIT_NOFILE raised to ``--nofile`` (``inkroom
serve`` does not raise it itself). Prints each run, then medians per server and the
ratios Inkroom/Node and Inkroom/pycrdt-websocket, then the issue's table.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
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
    issue_tokens,
    kill,
    load_argument,
    load_avg,
    median,
    nofile_of,
    raise_nofile,
    ratio,
    source_state,
    spawn,
)
from bench.relay import Case, Timing, drive_load

SCALE = BENCH / "scale.mjs"
CASE_NAMES = ["storm", "idle", "classroom", "10k"]


@dataclass(frozen=True)
class Settings:
    quick: bool
    nofile: int
    doc_bytes: int
    joiners: int
    idle_rooms: int
    idle_connections: int
    idle_s: float
    classroom_rate: float
    held: int
    held_room_size: int
    hold_procs: int
    timing: Timing

    @property
    def classroom(self) -> Case:
        return Case(
            "classroom",
            30,
            30,
            "rate",
            rate=self.classroom_rate,
            title=f"30 rooms x (1+30), {self.classroom_rate:g} upd/s per writer",
        )


# -- running scale.mjs ---------------------------------------------------------------------


def _node_env() -> dict[str, str]:
    return dict(os.environ)


def _scale(server: Server, config: dict[str, Any], timeout: float, name: str) -> dict[str, Any]:
    """Run ``scale.mjs`` to its end; its last stdout line is the result."""
    assert server.proc is not None
    config = {**config, "server_pid": server.proc.pid, "clk_tck": os.sysconf("SC_CLK_TCK")}
    proc = spawn(
        ["node", str(SCALE), load_argument(server.workdir, config, f"{name}.json")],
        _node_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=raise_nofile(server.nofile or 65536),
    )
    try:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            mode = config["mode"]
            raise RuntimeError(f"scale.mjs {mode} timed out after {timeout:g} s") from None
    finally:
        kill(proc, grace=1.0)
    if proc.returncode != 0 or not out.strip():
        raise RuntimeError(
            f"scale.mjs {config['mode']} failed ({proc.returncode}): "
            f"{err.decode(errors='replace')[-2000:]}\n-- server log --\n{server.log_tail()}"
        )
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    result["load_log"] = err.decode(errors="replace").strip()
    return result


def _rooms(server: Server, names: Sequence[str], per_room: int) -> list[dict[str, Any]]:
    """Per room: the URLs of ``per_room`` connections (the first opens the room)."""
    if server.kind == INKROOM:
        server.tokens.update(issue_tokens(names, per_room))
    return [{"name": n, "urls": [server.url(n, i) for i in range(per_room)]} for n in names]


def _with_server(
    kind: str, label: str, settings: Settings, body: Callable[[Server], dict[str, Any]]
) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix=f"scale-{kind}-", dir=WORK))
    server = Server(kind, free_port(), workdir, nofile=settings.nofile)
    try:
        server.start()
        return body(server)
    finally:
        server.stop()
        log = workdir / f"{kind}.log"
        if log.exists():
            (WORK / "logs").mkdir(exist_ok=True)
            shutil.copy(log, WORK / "logs" / f"scale-{kind}-{label}.log")
        shutil.rmtree(workdir, ignore_errors=True)


# -- cases ---------------------------------------------------------------------------------


def run_storm(kind: str, settings: Settings, round_no: int) -> dict[str, Any]:
    def body(server: Server) -> dict[str, Any]:
        [room] = _rooms(server, [f"r{round_no}-storm"], settings.joiners + 2)
        config = {
            "mode": "storm",
            "urls": room["urls"],
            "doc_bytes": settings.doc_bytes,
            "connect_timeout_s": 30,
            "preload_timeout_s": 60,
            "storm_timeout_s": 45 if settings.quick else 120,
            "settle_s": 1.0,
            "tail_s": 0.3,
        }
        return _scale(server, config, timeout=300, name="storm")

    return _with_server(kind, f"storm-r{round_no}", settings, body)


def run_idle(kind: str, settings: Settings, round_no: int) -> dict[str, Any]:
    def body(server: Server) -> dict[str, Any]:
        per_room = -(-settings.idle_connections // settings.idle_rooms)
        names = [f"r{round_no}-idle-{i:02d}" for i in range(settings.idle_rooms)]
        rooms = _rooms(server, names, per_room + 1)
        # Exactly idle_connections beyond the room hosts.
        extra = per_room * settings.idle_rooms - settings.idle_connections
        for room in rooms[:extra]:
            room["urls"].pop()
        config = {
            "mode": "idle",
            "rooms": rooms,
            "concurrency": 50,
            "connect_timeout_s": 120,
            "settle_s": 1.0,
            "tail_s": 1.0,
            "idle_s": settings.idle_s,
        }
        return _scale(server, config, timeout=settings.idle_s + 300, name="idle")

    return _with_server(kind, f"idle-r{round_no}", settings, body)


def run_classroom(kind: str, settings: Settings, round_no: int) -> dict[str, Any]:
    return _with_server(
        kind,
        f"classroom-r{round_no}",
        settings,
        lambda server: drive_load(server, settings.classroom, settings.timing, round_no),
    )


def _read_line(proc: subprocess.Popen[bytes], deadline: float) -> bytes:
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    buf = b""
    while not buf.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0 or proc.poll() is not None:
            raise RuntimeError("holder not ready")
        ready, _, _ = select.select([fd], [], [], min(left, 1.0))
        if ready:
            chunk = os.read(fd, 1)
            if not chunk:
                raise RuntimeError("holder closed its output")
            buf += chunk
    return buf


def run_10k(kind: str, settings: Settings, round_no: int) -> dict[str, Any]:
    def body(server: Server) -> dict[str, Any]:
        assert server.proc is not None
        alone = drive_load(server, settings.classroom, settings.timing, round_no, tag="-alone")
        n_rooms = -(-settings.held // settings.held_room_size)
        names = [f"r{round_no}-held-{i:03d}" for i in range(n_rooms)]
        rooms = _rooms(server, names, settings.held_room_size)
        extra = settings.held_room_size * n_rooms - settings.held
        for room in rooms[:extra]:
            room["urls"].pop()
        holders: list[subprocess.Popen[bytes]] = []
        try:
            t0 = time.monotonic()
            for j in range(settings.hold_procs):
                config = {
                    "mode": "hold",
                    "rooms": rooms[j :: settings.hold_procs],
                    "concurrency": 50,
                    "connect_timeout_s": 600,
                    "hold_max_s": 1500,
                    # Sources 127.0.0.2.. : a (source, port) pair per connection, so the
                    # ephemeral range is never the limit.
                    "local_addresses": [f"127.0.{j + 1}.{k}" for k in range(2, 18)],
                    "server_pid": server.proc.pid,
                    "clk_tck": os.sysconf("SC_CLK_TCK"),
                }
                holders.append(
                    spawn(
                        ["node", str(SCALE), load_argument(server.workdir, config, f"h{j}.json")],
                        _node_env(),
                        stdin=subprocess.PIPE,
                        stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE,
                        preexec_fn=raise_nofile(settings.nofile),
                    )
                )
            deadline = time.monotonic() + 630
            held = 0
            for h in holders:
                try:
                    held += int(json.loads(_read_line(h, deadline))["ready"])
                except RuntimeError:
                    kill(h, grace=1.0)
                    assert h.stderr is not None
                    why = h.stderr.read().decode(errors="replace")[-1500:]
                    raise RuntimeError(f"holder failed: {why}\n{server.log_tail()}") from None
            connect_s = time.monotonic() - t0
            fds = len(os.listdir(f"/proc/{server.proc.pid}/fd"))
            rss_kb = _rss_kb(server.proc.pid)
            beside = drive_load(
                server, settings.classroom, settings.timing, round_no, tag="-beside"
            )
            closed = 0
            for h in holders:
                out, _ = h.communicate(timeout=60)  # closes stdin: the holder lets go
                closed += int(json.loads(out.decode().strip().splitlines()[-1])["closed_early"])
        finally:
            for h in holders:
                kill(h, grace=2.0)
        return {
            "held": held,
            "held_connect_s": connect_s,
            "held_closed_early": closed,
            "server_fds": fds,
            "server_nofile": nofile_of(server.proc.pid),
            "server_rss_kb_held": rss_kb,
            "alone": alone,
            "beside": beside,
            "p99_alone_ms": alone["p99_ms"],
            "p99_beside_ms": beside["p99_ms"],
            "p50_alone_ms": alone["p50_ms"],
            "p50_beside_ms": beside["p50_ms"],
            "us_per_upd_alone": alone["server_cpu_us_per_update"],
            "us_per_upd_beside": beside["server_cpu_us_per_update"],
            "verified": held == settings.held
            and closed == 0
            and all(r["verified"] and not r["gaps"] for r in (alone, beside)),
        }

    return _with_server(kind, f"10k-r{round_no}", settings, body)


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


RUNNERS: dict[str, Callable[[str, Settings, int], dict[str, Any]]] = {
    "storm": run_storm,
    "idle": run_idle,
    "classroom": run_classroom,
    "10k": run_10k,
}


def _line(case: str, r: dict[str, Any]) -> str:
    if case == "storm":
        return (
            f"step2 p50 {fmt(r['step2_p50_ms'], '.0f')} ms p99 {fmt(r['step2_p99_ms'], '.0f')} ms"
            f"  timed out {r['timed_out']} (after {r['storm_timeout_s']:g} s)"
            f"  whole doc p99 {fmt(r['full_p99_ms'], '.0f')} ms"
            f"  cpu/join {fmt(r['server_cpu_ms_per_join'], '.1f')} ms"
            f" (storm cpu {r['server_cpu_s']:.1f} s in {r['storm_s']:.0f} s)"
            f"  one join alone {r['solo_join_ms']:.0f} ms, cpu {r['solo_join_cpu_ms']:.0f} ms"
            f"  synced {r['synced']}/{r['joiners']} of {r['doc_bytes'] / 1e6:.2f} MB"
            f"  partial-step2 {r['partial_step2']}  load cpu {r['load_cpu_util']:.2f}"
            f"  others {r['other_cpu_util']:.2f}"
        )
    if case == "idle":
        return (
            f"accept {r['accept_cpu_s']:.2f} s cpu for {r['connections']}"
            f"  rss/conn {r['rss_kb_per_conn']:.1f} KB (synced {r['rss_kb_per_conn_synced']:.1f})"
            f"  idle cpu {r['idle_cpu_pct']:.2f} %  over {r['idle_s']:.0f} s"
            f"  others {r['other_cpu_util']:.2f}"
        )
    if case == "classroom":
        return (
            f"{r['delivered_per_s']:,.0f} upd/s  {fmt(r['server_cpu_us_per_update'], '.1f')} us/upd"
            f"  p50 {fmt(r['p50_ms'], '.1f')} ms p99 {fmt(r['p99_ms'], '.1f')} ms"
            f"  load cpu {r['load_cpu_util']:.2f}  others {r['other_cpu_util']:.2f}"
        )
    return (
        f"held {r['held']} (fds {r['server_fds']}, nofile {r['server_nofile']}, "
        f"rss {r['server_rss_kb_held'] / 1024:.0f} MB, connected in {r['held_connect_s']:.0f} s)"
        f"  classroom p99 alone {fmt(r['p99_alone_ms'], '.1f')} ms"
        f" beside {fmt(r['p99_beside_ms'], '.1f')} ms"
        f"  us/upd {fmt(r['us_per_upd_alone'], '.1f')} -> {fmt(r['us_per_upd_beside'], '.1f')}"
    )


def _load_problem(r: dict[str, Any]) -> str | None:
    """What went wrong in a ``load.mjs`` run: lost or corrupted updates, or only behind."""
    if r["gaps"] or r["closed_early"]:
        return f"gaps {r['gaps']}, closed {r['closed_early']}"
    if r["missing_after_drain"]:
        return f"behind: {r['missing_after_drain']} updates missing 10 s after writing stopped"
    if not r["verified"]:
        return "verifier's document differs"
    return None


def _problem(case: str, r: dict[str, Any]) -> str | None:
    """None when the run completed and checked out, else what happened."""
    if case == "storm":
        if r["verified"] and r["synced"] == r["joiners"] and not r["closed_early"]:
            return None
        return (
            f"{r['joiners'] - r['synced']}/{r['joiners']} not whole after "
            f"{r['storm_timeout_s']:g} s ({r['failed']} closed: {r['first_error']})"
        )
    if case == "classroom":
        return _load_problem(r)
    if case == "idle":
        return None if r["verified"] else f"{r['closed_early']} closed while idle"
    problems = [f"held {r['held']}"] if r["held_closed_early"] else []
    for key in ("alone", "beside"):
        why = _load_problem(r[key])
        if why:
            problems.append(f"{key}: {why}")
    return "; ".join(problems) or None


def _ok(case: str, r: dict[str, Any]) -> bool:
    return _problem(case, r) is None


# -- report --------------------------------------------------------------------------------

# (case, key, label, format, scale): the issue's table, in its order.
TABLE: list[tuple[str, str, str, str, float]] = [
    ("storm", "step2_p99_ms", "join storm: sync step 2 p99 (s)", ".2f", 1e-3),
    ("storm", "step2_p50_ms", "join storm: sync step 2 p50 (s)", ".2f", 1e-3),
    ("storm", "full_p99_ms", "join storm: whole document p99 (s)", ".2f", 1e-3),
    ("storm", "server_cpu_ms_per_join", "join storm: server CPU per join (ms)", ".1f", 1.0),
    ("storm", "solo_join_ms", "one join alone, same document: time to whole (ms)", ".0f", 1.0),
    ("storm", "solo_join_cpu_ms", "one join alone: server CPU (ms)", ".0f", 1.0),
    ("idle", "rss_kb_per_conn", "idle: RSS per connection (KB)", ".1f", 1.0),
    ("idle", "idle_cpu_pct", "idle: server CPU while idle (%)", ".2f", 1.0),
    ("idle", "accept_cpu_per_1000_s", "CPU to accept 1,000 connections (s)", ".2f", 1.0),
    ("classroom", "server_cpu_us_per_update", "classroom: CPU per delivery (us)", ".1f", 1.0),
    ("classroom", "p99_ms", "classroom: stroke latency p99 (ms)", ".0f", 1.0),
    ("classroom", "delivered_per_s", "classroom: delivered upd/s", ",.0f", 1.0),
    ("10k", "p99_alone_ms", "10k: classroom p99 alone (ms)", ".0f", 1.0),
    ("10k", "p99_beside_ms", "10k: classroom p99 beside 10k idle (ms)", ".0f", 1.0),
    ("10k", "us_per_upd_alone", "10k: classroom CPU/delivery alone (us)", ".1f", 1.0),
    ("10k", "us_per_upd_beside", "10k: classroom CPU/delivery beside (us)", ".1f", 1.0),
]


def _cell(value: float | None, spec: str, case: str, server: str, results: Any) -> str:
    if value is not None:
        return fmt(value, spec)
    rows = [r for r in results if r["case"] == case and r["server"] == server]
    late = [r for r in rows if r.get("timed_out")]
    if late:
        whole = ", ".join(f"{r['synced']}/{r['joiners']}" for r in late)
        return f"> {late[0]['storm_timeout_s']:g} s ({whole} whole)"
    return "n/a"


def report(results: list[dict[str, Any]], cases: list[str], servers: list[str]) -> str:
    errors = [r for r in results if "error" in r]
    results = [r for r in results if "error" not in r]
    for r in results:
        if r["case"] == "idle":
            r["accept_cpu_per_1000_s"] = r["accept_cpu_s"] * 1000 / r["connections"]
    cols = [s for s in (NODE, PYCRDT, INKROOM) if s in servers]
    lines = [
        "| measure | " + " | ".join(SERVER_LABELS[s] for s in cols) + " | Inkroom/Node"
        " | Inkroom/pycrdt | checks |",
        "|---" * (len(cols) + 4) + "|",
    ]
    notes: list[str] = []
    for case, key, label, spec, scale in TABLE:
        if case not in cases:
            continue
        med: dict[str, float | None] = {}
        bad: list[str] = []
        for s in cols:
            rows = [r for r in results if r["case"] == case and r["server"] == s]
            m = median(rows, key)
            med[s] = None if m is None else m * scale
            for r in rows:
                problem = _problem(case, r)
                if problem:
                    bad.append(f"{s} r{r['round']}")
                    note = f"- {case}, {SERVER_LABELS[s]}, round {r['round']}: {problem}"
                    if note not in notes:
                        notes.append(note)
        cells = [_cell(med[s], spec, case, s, results) for s in cols]
        lines.append(
            f"| {label} | "
            + " | ".join(cells)
            + f" | {ratio(med.get(INKROOM), med.get(NODE))}"
            + f" | {ratio(med.get(INKROOM), med.get(PYCRDT))}"
            + f" | {('see below: ' + ', '.join(bad)) if bad else 'ok'} |"
        )
    if notes:
        lines += ["", "Checks:", *notes]
    lines.extend(
        f"\nERROR {r['case']} {r['server']} round {r['round']}: {r['error']}" for r in errors
    )
    return "\n".join(lines)


# -- main ----------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="shorter idle and load windows")
    parser.add_argument("--rounds", type=int, default=1, help="repeat every case (medians)")
    parser.add_argument(
        "--servers", nargs="+", choices=list(SERVER_LABELS), default=list(SERVER_LABELS)
    )
    parser.add_argument(
        "--held-servers",
        nargs="+",
        choices=list(SERVER_LABELS),
        default=[INKROOM, NODE],
        help="servers for the 10k case (pycrdt-websocket needs ~25 s of CPU and ~1 GB for it)",
    )
    parser.add_argument("--cases", nargs="+", choices=CASE_NAMES, default=CASE_NAMES)
    parser.add_argument("--doc-mb", type=float, default=2.0)
    parser.add_argument("--joiners", type=int, default=200)
    parser.add_argument("--idle-connections", type=int, default=1000)
    parser.add_argument("--idle-seconds", type=float, help="default 30 (15 with --quick)")
    parser.add_argument(
        "--classroom-rate",
        type=float,
        default=82.0,
        help="updates/s per writer (82 x 30 rooms x 30 readers = 73,800 deliveries/s)",
    )
    parser.add_argument("--held", type=int, default=10_000)
    parser.add_argument("--hold-procs", type=int, default=2)
    parser.add_argument("--nofile", type=int, default=65536, help="RLIMIT_NOFILE for all")
    parser.add_argument("--json", type=Path, help="write every raw result to this file")
    args = parser.parse_args(argv)

    settings = Settings(
        quick=args.quick,
        nofile=args.nofile,
        doc_bytes=int(args.doc_mb * 1_000_000),
        joiners=args.joiners,
        idle_rooms=50,
        idle_connections=args.idle_connections,
        idle_s=args.idle_seconds
        if args.idle_seconds is not None
        else (10.0 if args.quick else 30.0),
        classroom_rate=args.classroom_rate,
        held=args.held,
        held_room_size=20,
        hold_procs=args.hold_procs,
        timing=Timing(
            warmup_s=0.5 if args.quick else 1.0,
            measure_s=3.0 if args.quick else 5.0,
            drain_s=10.0,
            connect_timeout_s=120.0,
        ),
    )
    install_cleanup()
    ensure_node_modules()
    WORK.mkdir(exist_ok=True)
    cases: list[str] = [c for c in CASE_NAMES if c in args.cases]
    print(
        f"# scale benchmark: {args.rounds} round(s){' (quick)' if args.quick else ''}; "
        f"load average at start {load_avg()}",
        flush=True,
    )
    print(f"# inkroom source: {source_state()}", flush=True)
    results: list[dict[str, Any]] = []
    started = time.monotonic()
    for round_no in range(args.rounds):
        for case in cases:
            servers = [s for s in args.servers if case != "10k" or s in args.held_servers]
            # Back to back, so their ratios share conditions; the order rotates per round.
            shift = round_no % len(servers) if servers else 0
            for kind in servers[shift:] + servers[:shift]:
                t0 = time.monotonic()
                try:
                    result = RUNNERS[case](kind, settings, round_no)
                except Exception as exc:  # one failed run must not lose the others
                    print(f"round {round_no} {case:9s} {kind:7s} ERROR: {exc}", flush=True)
                    results.append(
                        {"server": kind, "case": case, "round": round_no, "error": str(exc)}
                    )
                    continue
                finally:
                    if args.json:
                        args.json.write_text(json.dumps(results, indent=1))
                result.update(server=kind, case=case, round=round_no)
                results.append(result)
                if args.json:
                    args.json.write_text(json.dumps(results, indent=1))
                print(
                    f"round {round_no} {case:9s} {kind:7s} {_line(case, result)}  "
                    f"{_problem(case, result) or 'ok'}  "
                    f"({time.monotonic() - t0:.0f} s)",
                    flush=True,
                )
    print(
        f"# load average at end {load_avg()}; {time.monotonic() - started:.0f} s in all\n",
        flush=True,
    )
    all_servers = [s for s in (NODE, PYCRDT, INKROOM) if s in args.servers]
    print(report(results, cases, all_servers))
    return 0


if __name__ == "__main__":
    sys.exit(main())
