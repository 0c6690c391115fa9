"""SFU benchmark: packet forwarding vs aiortc's MediaRelay, and a 31-person class.

Usage (repo root, venv active)::

    python bench/sfu.py                                  # everything (about 6 min)
    python bench/sfu.py --subscribers 1 5 --modes forward --no-class --seconds 5
    python bench/sfu.py --json bench/.work/sfu.json

Fan-out cases: one publisher (640x360 VP8 at 30 fps + a 48 kHz Opus tone) and N
subscribers through a relay process, in two modes:

* ``forward``: Inkroom's SFU (``sfu.service.Sfu``), which forwards RTP packets;
* ``mediarelay``: the aiortc baseline, ``MediaRelay.subscribe(track, buffered=False)``
  per subscriber: decoded once, encoded again for every subscriber.

Class case (forward mode): 1 tutor publishing audio and video, 30 students publishing
audio and speaking in turn (one loud student at a time, 2 s each, the others silent),
everyone subscribed under the tutor-first policy.

Both relays sit behind the same minimal WebSocket signaling (no auth) and use the same
Python clients (``sfu.client.CallClient``); subscribers count *encoded* frames (they do
not decode, to leave the cores to the relay being measured). Relay CPU is the relay
process's user+system time over the measured window, in percent of one core. Every
process is started here on 127.0.0.1 and killed at the end of its case (process group).
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import psutil

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))

HOST = "127.0.0.1"
LOGS = BENCH / ".work" / "sfu-logs"
TURN_SECONDS = 2.0
STUDENTS = 30
_children: list[subprocess.Popen[str]] = []


# -- relay process --------------------------------------------------------------------


async def relay_main(mode: str, port: int) -> None:
    import websockets

    from sfu.hooks import use_loopback_only

    use_loopback_only()
    if mode == "forward":
        from sfu.service import Sfu

        async with Sfu() as sfu:
            handler = _forward_handler(sfu)
            async with websockets.serve(handler, HOST, port, max_size=None, ping_interval=None):
                print("LISTENING", flush=True)
                await asyncio.Future()
    else:
        handler = _mediarelay_handler()
        async with websockets.serve(handler, HOST, port, max_size=None, ping_interval=None):
            print("LISTENING", flush=True)
            await asyncio.Future()


def _who(ws: Any) -> tuple[str, str]:
    query = parse_qs(urlparse(ws.request.path).query)
    return query["user"][0], query["role"][0]


def _forward_handler(sfu: Any) -> Any:
    from sfu.policy import Member, Role
    from sfu.signaling import encode

    async def handler(ws: Any) -> None:
        user, role = _who(ws)
        outbox: asyncio.Queue[str] = asyncio.Queue()

        async def write() -> None:
            while True:
                await ws.send(await outbox.get())

        session = None
        try:
            async with asyncio.TaskGroup() as tg:
                writer = tg.create_task(write())
                async for text in ws:
                    if session is None:
                        session = await sfu.join(
                            "c",
                            Member(user, Role(role)),
                            user,
                            lambda m: outbox.put_nowait(encode(m)),
                        )
                        continue
                    await session.receive(text)
                writer.cancel()
        except Exception:  # a peer that drops mid-write: the case ends anyway
            pass
        finally:
            if session is not None:
                await session.leave()

    return handler


def _mediarelay_handler() -> Any:
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
    from aiortc.contrib.media import MediaRelay

    relay = MediaRelay()
    sources: list[Any] = []
    pcs: set[Any] = set()

    def new_pc() -> Any:
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        pcs.add(pc)
        return pc

    async def handler(ws: Any) -> None:
        user, role = _who(ws)
        sub: Any = None

        async def send(obj: dict[str, Any]) -> None:
            await ws.send(json.dumps(obj))

        try:
            async for text in ws:
                msg = json.loads(text)
                kind = msg["type"]
                if kind == "join":
                    await send(
                        {
                            "type": "joined",
                            "participant": user,
                            "userId": user,
                            "role": role,
                            "iceServers": [],
                            "participants": [],
                            "policy": {},
                        }
                    )
                    if role != "tutor" and sources:
                        sub = new_pc()
                        for track in sources:
                            sub.addTrack(relay.subscribe(track, buffered=False))
                        await sub.setLocalDescription(await sub.createOffer())
                        mids = {
                            t.mid: {"kind": t.kind, "participant": "tutor", "userId": "tutor"}
                            for t in sub.getTransceivers()
                        }
                        await send({"type": "tracks", "tracks": mids})
                        await send({"type": "offer", "pc": "sub", "sdp": sub.localDescription.sdp})
                elif kind == "offer":
                    pub = new_pc()
                    pub.on("track", sources.append)
                    await pub.setRemoteDescription(RTCSessionDescription(msg["sdp"], "offer"))
                    await pub.setLocalDescription(await pub.createAnswer())
                    await send({"type": "answer", "pc": "pub", "sdp": pub.localDescription.sdp})
                elif kind == "answer" and sub is not None:
                    await sub.setRemoteDescription(RTCSessionDescription(msg["sdp"], "answer"))
        except Exception:
            pass

    return handler


# -- peer processes -------------------------------------------------------------------


class TurnTakingTone:
    """A student's voice: loud during their turn, silent otherwise (all processes share
    CLOCK_MONOTONIC, so turns agree without coordination)."""

    @staticmethod
    def make(index: int, students: int, dtx: bool) -> Any:
        from sfu.synthetic import Tone

        class _Tone(Tone):
            async def recv(self) -> Any:
                turn = int(time.monotonic() / TURN_SECONDS) % students
                loud = turn == index
                if loud != (self.amplitude > 0):
                    self.amplitude = 0.3 if loud else 0.0
                return await super().recv()

        tone = _Tone(440.0 + 10 * index, amplitude=0.3, dtx=dtx)
        tone.amplitude = 0.0
        return tone


async def peers_main(args: argparse.Namespace) -> None:
    import websockets

    from sfu.client import CallClient
    from sfu.hooks import count_frames_without_decoding, use_loopback_only
    from sfu.synthetic import MovingPicture, Tone

    use_loopback_only()
    count_frames_without_decoding()
    url = f"ws://{HOST}:{args.port}/"
    clients: list[tuple[str, CallClient]] = []

    async with contextlib.AsyncExitStack() as stack:
        tg = await stack.enter_async_context(asyncio.TaskGroup())

        async def connect(user: str, role: str) -> CallClient:
            ws = await stack.enter_async_context(
                websockets.connect(
                    f"{url}?user={user}&role={role}", max_size=None, ping_interval=None
                )
            )

            async def send(text: str) -> None:
                await ws.send(text)

            client = await stack.enter_async_context(CallClient(send, ice_servers=[]))

            async def pump() -> None:
                with contextlib.suppress(websockets.ConnectionClosed):
                    async for frame in ws:
                        await client.deliver(str(frame))

            tg.create_task(pump())
            await client.join()
            return client

        for i in range(args.count):
            user = "tutor" if args.role == "tutor" else f"s{args.base + i}"
            client = await connect(user, args.role)
            if args.publish == "av":
                await client.publish(Tone(), MovingPicture(640, 360, 30, distinct=60))
            elif args.publish == "turns":
                await client.publish(TurnTakingTone.make(args.base + i, args.students, args.dtx))
            clients.append((user, client))

        def ready() -> bool:
            if args.publish == "av" and args.role == "tutor":
                return True
            return all(
                any(r.kind == "video" and r.frames > 5 for r in c.received.values())
                for _, c in clients
            )

        async with asyncio.timeout(90):
            while not ready():  # noqa: ASYNC110 - frame counters have no event
                await asyncio.sleep(0.05)
        print("READY", flush=True)
        line = await asyncio.to_thread(sys.stdin.readline)
        start, end = (float(x) for x in line.split()[1:3])
        await asyncio.sleep(max(0.0, end - time.monotonic()) + 0.3)
        results = []
        for user, client in clients:
            video = [r.rate(start, end) for r in client.received.values() if r.kind == "video"]
            audio = [r.rate(start, end) for r in client.received.values() if r.kind == "audio"]
            tutor_audio = [
                r.rate(start, end)
                for mid, r in client.received.items()
                if r.kind == "audio" and client.tracks.get(mid, {}).get("userId") == "tutor"
            ]
            results.append(
                {
                    "user": user,
                    "video_fps": max(video, default=0.0),
                    "audio_fps": max(tutor_audio or audio, default=0.0),
                    "student_audio_fps": sum(audio) - sum(tutor_audio),
                }
            )
        print("RESULT " + json.dumps(results), flush=True)
        os._exit(0)  # peers' teardown is not what is measured: the case kills the relay


# -- orchestration --------------------------------------------------------------------


def _spawn(*argv: str) -> subprocess.Popen[str]:
    LOGS.mkdir(parents=True, exist_ok=True)
    log = LOGS / f"{argv[0]}-{len(_children)}.log"  # stderr, for a case that fails
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__)), *argv],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=log.open("w"),
        text=True,
        start_new_session=True,
        cwd=ROOT,
    )
    _children.append(proc)
    return proc


def _kill_all() -> None:
    for proc in _children:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    _children.clear()


atexit.register(_kill_all)


def _expect(proc: subprocess.Popen[str], word: str) -> str:
    assert proc.stdout is not None
    while True:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{proc.args!r} exited ({proc.wait()}) before {word}")
        if line.startswith(word):
            return line


def _rcvbuf_errors() -> int:
    """Datagrams the kernel dropped machine-wide because a socket's buffer was full."""
    lines = [
        ln.split()
        for ln in Path("/proc/net/snmp").read_text().splitlines()
        if ln.startswith("Udp:")
    ]
    return int(lines[1][lines[0].index("RcvbufErrors")])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def run_case(mode: str, groups: list[list[str]], seconds: float, warmup: float) -> dict[str, Any]:
    """Starts a relay, then each group of peers (in order); measures one window."""
    port = _free_port()
    relay = _spawn("relay", "--mode", mode, "--port", str(port))
    try:
        _expect(relay, "LISTENING")
        peers = []
        for group in groups:
            proc = _spawn("peers", "--port", str(port), *group)
            peers.append(proc)
            began = time.monotonic()
            _expect(proc, "READY")
            print(
                f"  ({' '.join(group)}: ready in {time.monotonic() - began:.1f} s)",
                file=sys.stderr,
                flush=True,
            )
        time.sleep(warmup)
        rp = psutil.Process(relay.pid)
        start = time.monotonic()
        end = start + seconds
        for proc in peers:
            assert proc.stdin is not None
            proc.stdin.write(f"WINDOW {start} {end}\n")
            proc.stdin.flush()
        cpu0 = rp.cpu_times()
        total0 = psutil.cpu_times()
        drops0 = _rcvbuf_errors()
        time.sleep(max(0.0, end - time.monotonic()))
        cpu1 = rp.cpu_times()
        total1 = psutil.cpu_times()
        drops = _rcvbuf_errors() - drops0
        rss = rp.memory_info().rss / 2**20
        results: list[dict[str, Any]] = []
        for proc in peers:
            results += json.loads(_expect(proc, "RESULT").split(" ", 1)[1])
    finally:
        _kill_all()
    relay_cpu = (cpu1.user + cpu1.system - cpu0.user - cpu0.system) / seconds
    busy = sum(total1) - sum(total0) - (total1.idle - total0.idle)
    return {
        "relay_cpu_pct": round(100 * relay_cpu, 1),
        "machine_busy_cores": round(busy / seconds, 2),
        "relay_rss_mb": round(rss, 1),
        "udp_rcvbuf_drops": drops,
        "peers": results,
    }


def _stats(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{min(values):.1f}/{statistics.mean(values):.1f}"


def fanout(mode: str, n: int, seconds: float, warmup: float) -> dict[str, Any]:
    groups = [["--role", "tutor", "--count", "1", "--publish", "av"]]
    procs = 1 if n < 10 else 2
    base = 0
    for p in range(procs):
        count = n // procs + (1 if p < n % procs else 0)
        groups.append(["--role", "student", "--count", str(count), "--base", str(base)])
        base += count
    result = run_case(mode, groups, seconds, warmup)
    subs = [r for r in result["peers"] if r["user"].startswith("s")]
    result.update(
        case="fanout",
        mode=mode,
        subscribers=n,
        video_fps=_stats([r["video_fps"] for r in subs]),
        audio_fps=_stats([r["audio_fps"] for r in subs]),
    )
    return result


def classroom(students: int, dtx: bool, seconds: float, warmup: float) -> dict[str, Any]:
    groups = [["--role", "tutor", "--count", "1", "--publish", "av"]]
    half = students // 2
    for base, count in ((0, half), (half, students - half)):
        groups.append(
            [
                "--role",
                "student",
                "--count",
                str(count),
                "--base",
                str(base),
                "--publish",
                "turns",
                "--students",
                str(students),
                *(["--dtx"] if dtx else []),
            ]
        )
    result = run_case("forward", groups, seconds, warmup)
    pupils = [r for r in result["peers"] if r["user"].startswith("s")]
    tutor = [r for r in result["peers"] if r["user"].startswith("t")]
    result.update(
        case="class (DTX)" if dtx else "class (no DTX)",
        mode="forward",
        subscribers=students + 1,
        video_fps=_stats([r["video_fps"] for r in pupils]),
        audio_fps=_stats([r["audio_fps"] for r in pupils]),
        student_audio_fps=_stats([r["student_audio_fps"] for r in pupils + tutor]),
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command")
    relay = sub.add_parser("relay")
    relay.add_argument("--mode", choices=["forward", "mediarelay"], required=True)
    relay.add_argument("--port", type=int, required=True)
    peers = sub.add_parser("peers")
    peers.add_argument("--port", type=int, required=True)
    peers.add_argument("--role", choices=["tutor", "student"], required=True)
    peers.add_argument("--count", type=int, default=1)
    peers.add_argument("--base", type=int, default=0)
    peers.add_argument("--publish", choices=["none", "av", "turns"], default="none")
    peers.add_argument("--students", type=int, default=STUDENTS)
    peers.add_argument("--dtx", action="store_true")
    parser.add_argument("--students", type=int, default=STUDENTS, help="in the class case")
    parser.add_argument("--subscribers", type=int, nargs="*", default=[1, 5, 10, 20, 30])
    parser.add_argument("--modes", nargs="+", default=["forward", "mediarelay"])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--no-class", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.command == "relay":
        asyncio.run(relay_main(args.mode, args.port))
        return
    if args.command == "peers":
        try:
            asyncio.run(peers_main(args))
        except BaseExceptionGroup as group:  # name the leaves: nesting hides them
            for leaf in _leaves(group):
                print(f"peers failed: {leaf!r}", file=sys.stderr)
                traceback.print_exception(leaf, file=sys.stderr)
            raise SystemExit(1) from None
        return
    rows = []
    print(
        "| case | mode | N | relay CPU % of a core | video fps min/avg | audio fps min/avg | "
        "student audio fps min/avg | machine busy cores | UDP drops | relay RSS MB |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    cases: list[tuple[str, int]] = [(m, n) for n in args.subscribers for m in args.modes]
    for mode, n in cases:
        row = fanout(mode, n, args.seconds, args.warmup)
        rows.append(row)
        _print(row)
    if not args.no_class:
        for dtx in (True, False):
            row = classroom(args.students, dtx, args.seconds, args.warmup)
            rows.append(row)
            _print(row)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=1))


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    leaves: list[BaseException] = []
    for exc in group.exceptions:
        leaves += _leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc]
    return leaves


def _print(row: dict[str, Any]) -> None:
    print(
        f"| {row['case']} | {row['mode']} | {row['subscribers']} | {row['relay_cpu_pct']} | "
        f"{row['video_fps']} | {row['audio_fps']} | {row.get('student_audio_fps', '-')} | "
        f"{row['machine_busy_cores']} | {row['udp_rcvbuf_drops']} | {row['relay_rss_mb']} |",
        flush=True,
    )


if __name__ == "__main__":
    main()
