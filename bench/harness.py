"""What the benchmarks share: starting and stopping the three servers, Inkroom tokens, the
load generator's config file, and the bookkeeping around them.

Used by ``bench/relay.py``, ``bench/multinode.py`` and ``bench/scale.py``. Every process
started here runs in its own session (process group) and is killed with its group, also
on an error or Ctrl-C (``install_cleanup``).
"""

from __future__ import annotations

import atexit
import json
import os
import resource
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
WORK = BENCH / ".work"
NODE_SERVER = BENCH / "node_modules" / ".bin" / "y-websocket"
PYCRDT_SERVER = BENCH / "pycrdt_server.py"
HOST = "127.0.0.1"
SECRET = "bench-secret-not-for-production-0123456789abcdef"

INKROOM = "inkroom"
NODE = "node"
PYCRDT = "pycrdt"
SERVER_LABELS = {
    INKROOM: "Inkroom",
    NODE: "@y/websocket-server 0.1.1",
    PYCRDT: "pycrdt-websocket 0.16.5",
}


# -- subprocesses ----------------------------------------------------------------------

LIVE: list[subprocess.Popen[bytes]] = []


def spawn(argv: Sequence[str], env: dict[str, str], **kwargs: Any) -> subprocess.Popen[bytes]:
    proc: subprocess.Popen[bytes] = subprocess.Popen(
        list(argv), env=env, cwd=ROOT, start_new_session=True, **kwargs
    )
    LIVE.append(proc)
    return proc


def kill(proc: subprocess.Popen[bytes], grace: float = 5.0) -> None:
    """SIGTERM to the process group, SIGKILL after ``grace`` seconds."""
    if proc in LIVE:
        LIVE.remove(proc)
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        proc.wait(timeout=grace)


def kill_all() -> None:
    for proc in list(LIVE):
        kill(proc, grace=2.0)


def on_signal(signum: int, _frame: object) -> None:
    kill_all()
    sys.exit(128 + signum)


def stop_py_spy(proc: subprocess.Popen[bytes]) -> None:
    if proc in LIVE:
        LIVE.remove(proc)
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            kill(proc, grace=1.0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def wait_listening(proc: subprocess.Popen[bytes], port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before listening")
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"server not listening on {port} after {timeout:g} s")


# -- servers ---------------------------------------------------------------------------


@dataclass
class Server:
    kind: str
    port: int
    workdir: Path
    proc: subprocess.Popen[bytes] | None = None
    # Per room: the writer's token, then one per reader (each connection its own user:
    # the server allows 16 connections per user, docs/security.md).
    tokens: dict[str, list[str]] = field(default_factory=dict)
    # RLIMIT_NOFILE for the server process, or None for the inherited one.
    nofile: int | None = None

    def start(self) -> None:
        env = dict(os.environ)
        if self.kind == INKROOM:
            env.update(
                INKROOM_SECRET=SECRET,
                INKROOM_MESSAGES_PER_SECOND="1000000",
                INKROOM_MESSAGE_BURST="1000000",
                INKROOM_OUTBOX_MESSAGES="100000",
                INKROOM_LOG_LEVEL="WARNING",
            )
            inkroom = Path(sys.executable).with_name("inkroom")
            argv = [
                str(inkroom),
                "serve",
                "--host",
                HOST,
                "--port",
                str(self.port),
                "--data-dir",
                str(self.workdir / "data"),
            ]
        elif self.kind == NODE:
            env.update(HOST=HOST, PORT=str(self.port))
            argv = [str(NODE_SERVER)]
        elif self.kind == PYCRDT:
            argv = [sys.executable, str(PYCRDT_SERVER), "--host", HOST, "--port", str(self.port)]
        else:
            raise ValueError(self.kind)
        log = (self.workdir / f"{self.kind}.log").open("wb")
        extra: dict[str, Any] = {}
        if self.nofile is not None:
            extra["preexec_fn"] = raise_nofile(self.nofile)
        self.proc = spawn(argv, env, stdout=log, stderr=subprocess.STDOUT, **extra)
        log.close()
        wait_listening(self.proc, self.port)

    def stop(self) -> None:
        if self.proc is not None:
            kill(self.proc)

    def issue_tokens(self, rooms: Sequence[str], readers: int) -> None:
        if self.kind == INKROOM:
            self.tokens.update(issue_tokens(rooms, readers + 1))

    def url(self, room: str, connection: int = 0) -> str:
        if self.kind == INKROOM:
            return f"ws://{HOST}:{self.port}/ws/{room}?token={self.tokens[room][connection]}"
        return f"ws://{HOST}:{self.port}/{room}"

    def room_config(self, room: str, readers: int) -> dict[str, Any]:
        config: dict[str, Any] = {"name": room, "url": self.url(room)}
        if self.kind == INKROOM:
            config["reader_urls"] = [self.url(room, i + 1) for i in range(readers)]
        return config

    def log_tail(self, lines: int = 20) -> str:
        path = self.workdir / f"{self.kind}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def issue_tokens(rooms: Sequence[str], per_room: int) -> dict[str, list[str]]:
    """Inkroom tokens, made by ``python -c`` calling ``server.auth.issue`` (TUTOR role):
    ``per_room`` per room, each its own user (the server allows 16 connections per user)."""
    code = (
        "import json, sys; from server.auth import Role, issue; "
        "n = int(sys.argv[2]); "
        "print(json.dumps({r: [issue(sys.argv[1], classroom=r, role=Role.TUTOR, "
        "user_id=f'{r}-u{i}', ttl=3600) for i in range(n)] for r in sys.argv[3:]}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, SECRET, str(per_room), *rooms],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=60,
    ).stdout
    tokens: dict[str, list[str]] = json.loads(out)
    return tokens


def load_argument(workdir: Path, config: dict[str, Any], name: str = "load.json") -> str:
    """The load generator's argument: its config as ``@file`` (per-connection tokens for
    30 rooms exceed what a command line holds)."""
    path = workdir / name
    path.write_text(json.dumps(config))
    return f"@{path}"


def raise_nofile(limit: int) -> Callable[[], None]:
    """A ``preexec_fn`` that raises the child's RLIMIT_NOFILE to ``limit`` (soft and hard;
    raising the hard limit needs CAP_SYS_RESOURCE, else the soft one goes as high as the
    hard one allows)."""

    def apply() -> None:
        _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (limit, max(limit, hard)))
        except (ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(limit, hard), hard))

    return apply


def nofile_of(pid: int) -> int:
    """The soft RLIMIT_NOFILE a running process has (``/proc/PID/limits``)."""
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            return int(line.split()[3])
    raise RuntimeError(f"no open-files limit for {pid}")


def install_cleanup() -> None:
    """Kill every process started here at exit, on SIGTERM and on Ctrl-C."""
    atexit.register(kill_all)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)


def load_avg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def source_state() -> str:
    """The Inkroom code measured: the commit, plus the files changed in the work tree."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "collab", "server", "pyproject.toml"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        ).stdout.split("\n")
    except OSError:
        return "unknown"
    changed = [line[3:] for line in dirty if line.strip()]
    return head + (f" + uncommitted changes in {', '.join(changed)}" if changed else "")


def ensure_node_modules() -> None:
    if NODE_SERVER.exists() and (BENCH / "node_modules" / "yjs").exists():
        return
    print("installing bench/node_modules (npm ci) ...", file=sys.stderr)
    subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=BENCH, check=True, timeout=600)


def median(results: list[dict[str, Any]], key: str) -> float | None:
    values = [float(r[key]) for r in results if r.get(key) is not None]
    return statistics.median(values) if values else None


def fmt(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b == 0:
        return "n/a"
    return f"{a / b:.2f}"
