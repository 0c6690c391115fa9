"""3G bytes and relay cost (issue 8): what a board costs on the wire, compressed and not.

For boards of 500, 5,000 and 20,000 strokes, against a real ``inkroom serve`` with
``INKROOM_WS_COMPRESSION`` on (permessage-deflate for messages of 4 KiB and more) and off:

* bytes on the wire (TCP payload from the server, through a counting proxy) for the first
  sync of a fresh client, and for the catch-up of a client that was away for 10 s while
  the tutor wrote (50 strokes);
* the relay's CPU per delivery: one writer sends small live updates (a 100 ms ink batch)
  to 20 readers that negotiated compression; server CPU (``/proc``) per update per reader.

Clients are Python ``websockets`` with compression offered, as Chromium offers it.

    python bench/threeg.py [--strokes 500 5000 20000] [--updates 2000] [--readers 20]

Everything listens on 127.0.0.1; every server started is stopped (process group).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import websockets
from pycrdt import Array, Doc, Map

from collab.protocol import SyncStep1, SyncStep2, SyncUpdate, decode
from server.auth import Role, issue

ROOT = Path(__file__).resolve().parent.parent
INKROOM = ROOT / ".venv" / "bin" / "inkroom"
SECRET = "bench-threeg-" + "0123456789abcdef" * 4


def stroke(rnd: random.Random, i: int) -> Map[Any]:
    points = [0, 0]
    for _ in range(29):
        points += [rnd.randint(2, 5), rnd.randint(-4, 4)]
    return Map({"t": "p", "pg": "p0", "z": f"a{i:06d}", "c": "#1f2933", "w": 4, "x": i % 1500,
                "y": i % 1100, "done": True, "pts": Array(points)})  # fmt: skip


def write_strokes(doc: Doc[Any], start: int, count: int, seed: int = 1) -> None:
    rnd = random.Random(seed + start)
    shapes = doc.get("shapes", type=Map)
    for b in range(start, start + count, 250):
        with doc.transaction():
            for i in range(b, min(start + count, b + 250)):
                shapes[f"s{i}"] = stroke(rnd, i)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.contextmanager
def inkroom(compression: bool) -> Iterator[tuple[int, int]]:
    """A fresh ``inkroom serve``; yields (port, pid)."""
    data = Path(tempfile.mkdtemp(prefix="inkroom-threeg-"))
    port = free_port()
    env = {**os.environ, "INKROOM_SECRET": SECRET, "INKROOM_LOG_LEVEL": "WARNING",
           "INKROOM_WS_COMPRESSION": "true" if compression else "false"}  # fmt: skip
    argv = [
        str(INKROOM),
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--data-dir",
        str(data),
    ]
    proc = subprocess.Popen(argv, env=env, start_new_session=True, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("inkroom serve did not start")
            time.sleep(0.1)
        yield port, proc.pid
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        shutil.rmtree(data, ignore_errors=True)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Counter:
    """A TCP proxy counting the bytes the server sends."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.down = 0
        self.port = 0

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Counter]:
        tasks: set[asyncio.Task[None]] = set()

        async def pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter, down: bool) -> None:
            with contextlib.suppress(OSError):
                while data := await r.read(65536):
                    if down:
                        self.down += len(data)
                    w.write(data)
                    await w.drain()
            w.close()

        async def accept(cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
            sr, sw = await asyncio.open_connection("127.0.0.1", self.target)
            for t in (pipe(cr, sw, False), pipe(sr, cw, True)):
                task = asyncio.create_task(t)
                tasks.add(task)
                task.add_done_callback(tasks.discard)

        server = await asyncio.start_server(accept, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        try:
            yield self
        finally:
            server.close()
            for task in list(tasks):
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


def url(port: int, user: str) -> str:
    token = issue(SECRET, classroom="bench", role=Role.TUTOR, user_id=user)
    return f"ws://127.0.0.1:{port}/ws/bench/board?token={token}"


async def sync(port: int, doc: Doc[Any]) -> None:
    """Connects, sends ``doc``'s state vector and applies everything until SyncStep2."""
    async with websockets.connect(url(port, "reader"), max_size=None, compression="deflate") as ws:
        await ws.send(bytes(SyncStep1(doc.get_state())))
        while True:
            frame = await ws.recv()
            assert isinstance(frame, bytes)
            message = decode(frame)
            if isinstance(message, SyncUpdate | SyncStep2):
                doc.apply_update(message.update)
            if isinstance(message, SyncStep2):
                return


async def push(port: int, update: bytes, state: bytes) -> None:
    """Sends ``update``; returns once the server has applied it (``state`` is the state
    vector with it: the server answers that SyncStep1 after the update, with nothing)."""
    async with websockets.connect(url(port, "tutor"), max_size=None) as ws:
        await ws.send(bytes(SyncUpdate(update)))
        await ws.send(bytes(SyncStep1(state)))
        while True:
            frame = await ws.recv()
            assert isinstance(frame, bytes)
            if isinstance(decode(frame), SyncStep2):
                return


async def bytes_case(strokes: int, compression: bool) -> dict[str, float]:
    size = 0
    with inkroom(compression) as (port, _):
        sent: Doc[Any] = Doc()
        for start in range(0, strokes, 2000):
            before = sent.get_state()
            write_strokes(sent, start, min(2000, strokes - start))
            await push(port, sent.get_update(before), sent.get_state())
        held: Doc[Any] = Doc()
        async with Counter(port).running() as proxy:
            t0 = time.perf_counter()
            await sync(proxy.port, held)
            first = proxy.down
            first_s = time.perf_counter() - t0
        assert len(held.get("shapes", type=Map)) == strokes
        size = len(held.get_update())
        # 10 s away: the tutor writes 50 strokes meanwhile.
        before = sent.get_state()
        write_strokes(sent, strokes, 50, seed=7)
        await push(port, sent.get_update(before), sent.get_state())
        async with Counter(port).running() as proxy:
            await sync(proxy.port, held)
            catch_up = proxy.down
        assert len(held.get("shapes", type=Map)) == strokes + 50
    return {"update": size, "first": first, "first_s": first_s, "catch_up": catch_up}


async def relay_case(compression: bool, updates: int, readers: int) -> tuple[float, float]:
    """Server CPU microseconds per update and per message delivered to one reader.

    Inkroom merges updates that arrive in one loop turn, so a reader may get fewer
    messages than the writer sent; each reader is done when its copy holds every point.
    """
    with inkroom(compression) as (port, pid):
        messages = 0
        finished = 0
        done = asyncio.Event()
        want = 60 + updates * 12

        async def read(ws: websockets.ClientConnection) -> None:
            nonlocal messages, finished
            copy: Doc[Any] = Doc()
            await ws.send(bytes(SyncStep1(copy.get_state())))
            async for frame in ws:
                assert isinstance(frame, bytes)
                message = decode(frame)
                if isinstance(message, SyncUpdate | SyncStep2):
                    copy.apply_update(message.update)
                    messages += isinstance(message, SyncUpdate)
                    shapes = copy.get("shapes", type=Map)
                    if "live" in shapes and len(shapes["live"]["pts"]) == want:
                        finished += 1
                        if finished == readers:
                            done.set()
                        return

        async with contextlib.AsyncExitStack() as stack:
            writer = await stack.enter_async_context(
                websockets.connect(url(port, "w"), max_size=None, compression="deflate")
            )
            doc: Doc[Any] = Doc()
            doc.get("shapes", type=Map)["live"] = stroke(random.Random(3), 0)
            await writer.send(bytes(SyncUpdate(doc.get_update())))
            ink = doc.get("shapes", type=Map)["live"]["pts"]
            frames = []
            for _ in range(updates):
                before = doc.get_state()
                ink.extend([3, -2] * 6)  # one 100 ms ink batch: 6 points
                frames.append(bytes(SyncUpdate(doc.get_update(before))))
            socks = [
                await stack.enter_async_context(
                    websockets.connect(url(port, f"r{i}"), max_size=None, compression="deflate")
                )
                for i in range(readers)
            ]
            tasks = [asyncio.create_task(read(ws)) for ws in socks]
            await asyncio.sleep(1.0)
            cpu0 = cpu_seconds(pid)
            for i, frame in enumerate(frames):
                await writer.send(frame)
                if i % 10 == 9:
                    await asyncio.sleep(0.005)
            try:
                async with asyncio.timeout(60):
                    await done.wait()
            except TimeoutError:
                raise RuntimeError(f"{finished} of {readers} readers got everything") from None
            cpu = cpu_seconds(pid) - cpu0
            await asyncio.gather(*tasks, return_exceptions=True)
        return cpu / (updates * readers) * 1e6, cpu / max(1, messages) * 1e6


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--strokes", type=int, nargs="*", default=[500, 5000, 20000])
    parser.add_argument("--updates", type=int, default=2000)
    parser.add_argument("--readers", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print("| strokes | update bytes | B/stroke | first sync, plain | first sync, deflate | saved |"
          " catch-up (10 s away), plain | catch-up, deflate |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for n in args.strokes:
        plain = await bytes_case(n, False)
        packed = await bytes_case(n, True)
        saved = 1 - packed["first"] / plain["first"]
        print(f"| {n:,} | {plain['update']:,.0f} | {plain['update'] / n:.0f}"
              f" | {plain['first']:,.0f} | {packed['first']:,.0f} | {saved:.1%}"
              f" | {plain['catch_up']:,.0f} | {packed['catch_up']:,.0f} |", flush=True)  # fmt: skip
    print()
    print("| round | CPU per update per reader, off (us) | on (us) | on / off |"
          " per message delivered, off (us) | on (us) |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    for r in range(args.rounds):
        off, off_msg = await relay_case(False, args.updates, args.readers)
        on, on_msg = await relay_case(True, args.updates, args.readers)
        print(f"| {r + 1} | {off:.1f} | {on:.1f} | {on / off:.2f} | {off_msg:.1f}"
              f" | {on_msg:.1f} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(130)
