"""A real ``inkroom serve`` process on a free port, with its own data dir and secret."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import IO

import anyio
from anyio.abc import Process

from server.auth import Role, issue

# The classroom the tests' tokens are for; documents are ``c1`` and ``c1/...``.
CLASSROOM = "c1"
READY_DEADLINE = 20.0
STOP_DEADLINE = 15.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def inkroom_command() -> list[str]:
    """The console script of the running venv, else the module it wraps."""
    script = Path(sys.executable).with_name("inkroom")
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-m", "server.cli"]


def _probe(url: str) -> int:
    """The HTTP status of a GET, or 0 when nothing answers (stdlib: no client dependency)."""
    try:
        with urllib.request.urlopen(url, timeout=2.0) as response:
            status: int = response.status
            return status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


class ServerNotReady(RuntimeError):
    """The server exited or did not answer ``/readyz`` with 200 before the deadline."""


class InkroomServer:
    """Starts, stops (SIGTERM, then SIGKILL after a deadline) and restarts one server.

    Restarting keeps the port, the data dir and the secret, so tokens stay valid and the
    SQLite file is the one the previous process flushed to.
    """

    def __init__(
        self, data_dir: Path, log_path: Path, env: Mapping[str, str] | None = None
    ) -> None:
        self.data_dir = data_dir
        self.log_path = log_path
        self.port = free_port()
        self.secret = secrets.token_urlsafe(48)
        self.env = dict(env or {})
        self._process: Process | None = None
        self._log: IO[bytes] = log_path.open("ab")

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        """The y-websocket ``serverUrl``: the provider appends ``/{document}``."""
        return f"ws://127.0.0.1:{self.port}/ws"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.returncode is None

    def token(
        self,
        classroom: str,
        role: Role = Role.TUTOR,
        *,
        user_id: str | None = None,
        name: str | None = None,
        ttl: int = 3600,
        now: float | None = None,
        secret: str | None = None,
    ) -> str:
        user = user_id or f"{role.value}-{secrets.token_hex(4)}"
        return issue(
            secret or self.secret,
            classroom=classroom,
            role=role,
            user_id=user,
            name=name or user,
            ttl=ttl,
            now=now,
        )

    def _environment(self) -> dict[str, str]:
        # Inherited INKROOM_* settings (a developer's DATABASE_URL, say) must not leak in.
        env = {k: v for k, v in os.environ.items() if not k.startswith("INKROOM_")}
        env.update(
            INKROOM_SECRET=self.secret,
            INKROOM_LOG_JSON="false",
            INKROOM_LOG_LEVEL="INFO",
            PYTHONUNBUFFERED="1",
        )
        env.update(self.env)
        return env

    async def start(self) -> None:
        """Starts the process and returns once ``/readyz`` answers 200.

        Raises:
            ServerNotReady: the process exited, or was not ready within the deadline.
        """
        assert not self.running, "already running"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._log.write(f"--- starting on port {self.port} ---\n".encode())
        self._log.flush()
        self._process = await anyio.open_process(
            [
                *inkroom_command(),
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--data-dir",
                str(self.data_dir),
            ],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=self._environment(),
        )
        try:
            await self._wait_ready()
        except BaseException:
            await self.stop()
            raise

    async def _wait_ready(self) -> None:
        # No event announces readiness across processes: poll the contract's probe.
        started = time.monotonic()
        while True:
            process = self._process
            assert process is not None
            if process.returncode is not None:
                raise ServerNotReady(
                    f"inkroom exited with {process.returncode}:\n{self.log_tail()}"
                )
            if await anyio.to_thread.run_sync(_probe, f"{self.http_url}/readyz") == 200:
                return
            if time.monotonic() - started > READY_DEADLINE:
                raise ServerNotReady(
                    f"inkroom not ready after {READY_DEADLINE} s:\n{self.log_tail()}"
                )
            await anyio.sleep(0.05)

    async def stop(self) -> bool:
        """Sends SIGTERM and waits; kills after the deadline.

        Returns:
            ``True`` if the process exited on its own after SIGTERM, ``False`` if killed.
        """
        process, self._process = self._process, None
        if process is None:
            return True
        with anyio.CancelScope(shield=True):
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(signal.SIGTERM)
            try:
                with anyio.fail_after(STOP_DEADLINE):
                    await process.wait()
                graceful = True
            except TimeoutError:
                process.kill()
                await process.wait()
                graceful = False
            await process.aclose()
        return graceful

    def send_signal(self, sig: signal.Signals) -> None:
        """SIGSTOP freezes the node (alive to the others until their timeout, answering
        nothing); SIGCONT thaws it."""
        assert self._process is not None, "not running"
        self._process.send_signal(sig)

    async def kill(self) -> None:
        """SIGKILL: no drain, no flush, no goodbye on the bus."""
        process, self._process = self._process, None
        if process is None:
            return
        with anyio.CancelScope(shield=True):
            process.kill()
            await process.wait()
            await process.aclose()

    async def restart(self) -> bool:
        """Stops with SIGTERM and starts again on the same port and data dir."""
        graceful = await self.stop()
        await self.start()
        return graceful

    async def aclose(self) -> None:
        await self.stop()
        self._log.close()

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


StartServer = Callable[..., Awaitable[InkroomServer]]
"""The ``start_server`` fixture: ``await start_server(env={...})``."""
