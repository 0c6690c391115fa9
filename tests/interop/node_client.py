"""Python handles on stock Yjs clients living in a ``driver.mjs`` Node process.

One :class:`NodeDriver` is one Node process; it holds any number of :class:`YClient`s
(a ``Y.Doc`` with its ``WebsocketProvider`` each). Killing the driver is how a test drops
its clients abruptly, with no close frame and no goodbye.
"""

from __future__ import annotations

import base64
import itertools
import json
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import Process, TaskGroup
from anyio.streams.buffered import BufferedByteReceiveStream

INTEROP_DIR = Path(__file__).resolve().parent
DRIVER = INTEROP_DIR / "driver.mjs"
# The driver enforces each wait's deadline itself; this margin only catches a hung driver.
REPLY_MARGIN = 5.0
START_DEADLINE = 10.0
EXIT_DEADLINE = 5.0
MAX_LINE = 64 * 1024 * 1024
MAX_STDERR = 64 * 1024


class DriverError(RuntimeError):
    """A command failed in the driver (a wait timed out, say), or the driver died."""

    def __init__(self, message: str, snapshot: Snapshot | None = None) -> None:
        super().__init__(message if snapshot is None else f"{message}\nlast state: {snapshot}")
        self.snapshot = snapshot


@dataclass(frozen=True, slots=True)
class Close:
    code: int | None  # ``None`` when the provider closed the socket itself
    reason: str


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What one client's doc, provider and awareness looked like at one instant."""

    client_id: int
    status: str | None
    statuses: list[str]
    synced: bool
    sync_events: int
    closes: list[Close]
    terminal: list[Close]
    denied: list[str]
    sockets: int
    should_connect: bool
    awareness: dict[int, dict[str, Any]]
    content: dict[str, Any]
    state_vector: bytes
    clocks: dict[int, int]

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> Snapshot:
        return cls(
            client_id=int(raw["clientId"]),
            status=raw["status"],
            statuses=list(raw["statuses"]),
            synced=bool(raw["synced"]),
            sync_events=int(raw["syncEvents"]),
            closes=[Close(c["code"], c["reason"]) for c in raw["closes"]],
            terminal=[Close(c["code"], c["reason"]) for c in raw["terminal"]],
            denied=list(raw["denied"]),
            sockets=int(raw["sockets"]),
            should_connect=bool(raw["shouldConnect"]),
            awareness={int(e["client"]): e["state"] for e in raw["awareness"]},
            content=dict(raw["json"]),
            state_vector=base64.b64decode(raw["stateVector"]),
            clocks={int(k): int(v) for k, v in raw["clocks"].items()},
        )


class _Pending:
    __slots__ = ("done", "reply")

    def __init__(self) -> None:
        self.done = anyio.Event()
        self.reply: dict[str, Any] | None = None


class NodeDriver:
    """One ``node driver.mjs`` process, spoken to in JSON lines. Use :meth:`open`."""

    def __init__(self, process: Process, label: str) -> None:
        self.label = label
        self._stderr = bytearray()
        self._process = process
        self._ids = itertools.count(1)
        self._pending: dict[int, _Pending] = {}
        self._ready = anyio.Event()
        self._gone = False
        self._send_lock = anyio.Lock()

    @property
    def pid(self) -> int:
        return self._process.pid

    @classmethod
    @asynccontextmanager
    async def open(cls, *, node: str, label: str) -> AsyncIterator[NodeDriver]:
        """Starts a driver; on exit asks it to leave, and kills it if it does not."""
        process = await anyio.open_process(
            [node, str(DRIVER)],
            cwd=INTEROP_DIR,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        driver = cls(process, label)
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(driver._collect_stderr)
                tg.start_soon(driver._read_replies)
                try:
                    with anyio.fail_after(START_DEADLINE):
                        await driver._ready.wait()
                    if driver._gone:
                        raise DriverError(driver._gone_message())
                    yield driver
                finally:
                    await driver._close(tg)
        finally:
            with anyio.CancelScope(shield=True):
                await process.aclose()

    async def _close(self, tg: TaskGroup) -> None:
        with anyio.CancelScope(shield=True):
            if self._process.returncode is None:
                try:
                    with anyio.fail_after(EXIT_DEADLINE):
                        await self.request("exit")
                        await self._process.wait()
                except (DriverError, TimeoutError):
                    self._process.kill()
                    await self._process.wait()
            tg.cancel_scope.cancel()

    async def kill(self) -> None:
        """SIGKILL: the clients' sockets drop with no close frame and no awareness goodbye."""
        self._process.kill()
        with anyio.fail_after(EXIT_DEADLINE):
            await self._process.wait()

    async def _collect_stderr(self) -> None:
        assert self._process.stderr is not None
        try:
            async for chunk in self._process.stderr:
                self._stderr += chunk
                del self._stderr[:-MAX_STDERR]
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass

    async def _read_replies(self) -> None:
        assert self._process.stdout is not None
        lines = BufferedByteReceiveStream(self._process.stdout)
        try:
            while True:
                message = json.loads(await lines.receive_until(b"\n", MAX_LINE))
                if message.get("event") == "ready":
                    self._ready.set()
                    continue
                pending = self._pending.pop(message["id"], None)
                if pending is not None:
                    pending.reply = message
                    pending.done.set()
        except (anyio.EndOfStream, anyio.IncompleteRead, anyio.ClosedResourceError):
            pass
        finally:
            self._gone = True
            self._ready.set()
            for pending in self._pending.values():
                pending.done.set()
            self._pending.clear()

    async def request(self, cmd: str, **args: Any) -> Any:
        """Sends one command and returns its result.

        Raises:
            DriverError: the command failed, or the driver exited before replying.
        """
        if self._gone:
            raise DriverError(self._gone_message())
        assert self._process.stdin is not None
        request_id = next(self._ids)
        pending = self._pending[request_id] = _Pending()
        line = json.dumps({"id": request_id, "cmd": cmd, **args}) + "\n"
        try:
            async with self._send_lock:
                await self._process.stdin.send(line.encode())
        except (anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
            self._pending.pop(request_id, None)
            raise DriverError(f"driver {self.label} is gone") from exc
        deadline = float(args.get("timeoutMs", 0)) / 1000 + REPLY_MARGIN
        with anyio.fail_after(deadline):
            await pending.done.wait()
        reply = pending.reply
        if reply is None:
            raise DriverError(f"no reply to {cmd}: {self._gone_message()}")
        if not reply["ok"]:
            raw = reply.get("snapshot")
            raise DriverError(str(reply["error"]), Snapshot.parse(raw) if raw else None)
        return reply["result"]

    async def client(
        self,
        name: str,
        *,
        server_url: str,
        room: str,
        token: str | None,
        connect: bool = True,
        max_backoff_ms: int | None = None,
    ) -> YClient:
        """Creates a ``Y.Doc`` + ``WebsocketProvider`` (``disableBc: true``) in this driver."""
        args: dict[str, Any] = {"name": name, "url": server_url, "room": room, "token": token}
        args["connect"] = connect
        if max_backoff_ms is not None:
            args["maxBackoffTime"] = max_backoff_ms
        snapshot = Snapshot.parse(await self.request("create", **args))
        return YClient(self, name, snapshot.client_id)

    def _gone_message(self) -> str:
        return f"driver {self.label} exited; its stderr:\n{self.log_tail()}"

    def log_tail(self, lines: int = 40) -> str:
        """The end of the driver's stderr (y-websocket warnings, Node errors)."""
        text = self._stderr.decode(errors="replace")
        return "\n".join(text.splitlines()[-lines:]) or "(nothing on stderr)"


class YClient:
    """One stock Yjs client. Shared types: ``map`` (Y.Map), ``array`` (Y.Array), ``text``."""

    def __init__(self, driver: NodeDriver, name: str, client_id: int) -> None:
        self.driver = driver
        self.name = name
        self.client_id = client_id

    def __repr__(self) -> str:
        return f"YClient({self.name!r}, id={self.client_id})"

    async def _do(self, cmd: str, **args: Any) -> Any:
        return await self.driver.request(cmd, name=self.name, **args)

    async def connect(self) -> None:
        await self._do("connect")

    async def disconnect(self) -> None:
        await self._do("disconnect")

    async def reconnect(self) -> None:
        """Drops the connection and opens a new one at once, as after a network blip."""
        await self._do("reconnect")

    async def destroy(self) -> None:
        """``provider.destroy()``: a graceful leave that sends a ``null`` awareness state."""
        await self._do("destroy")

    async def map_set(self, key: str, value: Any) -> None:
        await self._do("map_set", key=key, value=value)

    async def array_push(self, *values: Any) -> None:
        await self._do("array_push", values=list(values))

    async def text_insert(self, content: str, index: int | None = None) -> None:
        """Inserts at ``index``, or appends when it is ``None``."""
        await self._do("text_insert", content=content, index=index)

    async def set_awareness(self, state: Mapping[str, Any] | None) -> None:
        await self._do("awareness_set", state=state)

    async def read(self) -> Snapshot:
        return Snapshot.parse(await self._do("read"))

    async def outlast_reconnect(self) -> Snapshot:
        """A snapshot taken after any reconnect the provider scheduled would have begun."""
        return Snapshot.parse(await self._do("outlast_reconnect"))

    async def wait(
        self,
        *,
        deadline: float = 5.0,
        synced: bool | None = None,
        status: str | None = None,
        closes: int | None = None,
        terminal: int | None = None,
        denied: int | None = None,
        content: Mapping[str, Any] | None = None,
        clocks: Mapping[int, int] | None = None,
        present: Mapping[int, Mapping[str, Any]] | None = None,
        absent: Sequence[int] | None = None,
    ) -> Snapshot:
        """Waits until every given condition holds; returns the snapshot of that moment.

        ``content`` is the JSON of all shared types; ``clocks`` a state vector to cover;
        ``present`` maps awareness client ids to fields their state must have; ``closes``,
        ``terminal`` and ``denied`` are minimum counts of close events, ``closed`` events
        and permission-denied messages.

        The driver enforces ``deadline`` (seconds) itself, so that a timeout comes back with
        the snapshot of what it was waiting on; wrapping the call in ``fail_after`` would
        lose that.

        Raises:
            DriverError: the deadline passed first; ``snapshot`` holds the last state.
        """
        until: dict[str, Any] = {}
        for key, value in (
            ("synced", synced),
            ("status", status),
            ("closes", closes),
            ("terminal", terminal),
            ("denied", denied),
            ("json", content),
            ("absent", list(absent) if absent is not None else None),
        ):
            if value is not None:
                until[key] = value
        if clocks is not None:
            until["clocks"] = {str(k): v for k, v in clocks.items()}
        if present is not None:
            until["present"] = {str(k): dict(v) for k, v in present.items()}
        if not until:
            raise ValueError("wait needs at least one condition")
        return Snapshot.parse(await self._do("wait", until=until, timeoutMs=int(deadline * 1000)))


OpenDriver = Callable[..., Awaitable[NodeDriver]]
"""The ``node`` fixture: ``await node("label")`` opens one more driver process."""
