"""A call participant run inside a network namespace by test_netns.py (``python -m``).

Joins with the server's ICE servers, publishes, optionally gathers candidates the way
the ``/check`` page does, receives for ``--seconds`` and prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
import time
from collections.abc import AsyncIterator

import websockets
from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection

from sfu.check import diagnose
from sfu.client import CallClient
from sfu.synthetic import MovingPicture, Tone


async def gather_types(server: RTCIceServer | None) -> set[str]:
    """Candidate types gathered with one ICE server (aiortc uses one TURN URL at a time,
    so each is tried on its own, as the /check page lists relay/udp and relay/tcp)."""
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[server] if server else []))
    try:
        pc.addTransceiver("audio")
        await pc.setLocalDescription(await pc.createOffer())  # gathers every candidate
        types = set()
        for transceiver in pc.getTransceivers():
            gatherer = transceiver.receiver.transport.transport.iceGatherer
            types |= {c.type for c in gatherer.getLocalCandidates()}
        return types
    finally:
        await pc.close()


@contextlib.asynccontextmanager
async def session(url: str, ice: list[RTCIceServer] | None) -> AsyncIterator[CallClient]:
    async with websockets.connect(url) as ws:

        async def send(text: str) -> None:
            await ws.send(text)

        async with CallClient(send, ice_servers=ice) as client, asyncio.TaskGroup() as tg:

            async def pump() -> None:
                with contextlib.suppress(websockets.ConnectionClosed):
                    async for frame in ws:
                        await client.deliver(str(frame))

            task = tg.create_task(pump())
            await client.join()
            try:
                yield client
            finally:
                task.cancel()


async def check(url: str, result: dict[str, object]) -> list[RTCIceServer]:
    """The /check inventory and diagnosis; returns the ICE servers that work here."""
    async with session(url, []) as probe:
        assert probe.joined is not None
        offered = probe.joined["iceServers"]
    servers = [
        (u, RTCIceServer(u, entry.get("username"), entry.get("credential")))
        for entry in offered
        for u in entry["urls"]
    ]
    gathered = await asyncio.gather(*(gather_types(server) for _, server in servers))
    types: set[str] = set()
    working: list[RTCIceServer] = []
    for (u, server), found in zip(servers, gathered, strict=True):
        if u.startswith("turn") and "relay" in found:
            found = (found - {"relay"}) | {f"relay/{u.rsplit('transport=', 1)[-1]}"}
        ok = "srflx" in found if u.startswith("stun") else any(t.startswith("relay") for t in found)
        if ok:
            working.append(server)
        types |= found
    urls = [u for e in offered for u in e["urls"]]
    result["candidate_types"] = sorted(types)
    result["diagnosis"] = diagnose(
        types,
        stun=any(u.startswith("stun:") for u in urls),
        turn=any(u.startswith(("turn:", "turns:")) for u in urls),
    )
    return working


async def watch(client: CallClient, seconds: float) -> None:
    """Prints what the server says it forwards (``QUALITY``) as it changes, and the frames
    decoded and the RTP packets received so far per kind (``FRAMES``) twice a second."""
    end = time.monotonic() + seconds
    said = ""
    while time.monotonic() < end:
        if client.quality != said:
            said = client.quality
            print("QUALITY " + said, flush=True)
        frames = {"audio": 0, "video": 0}
        for r in client.received.values():
            frames[r.kind] = frames.get(r.kind, 0) + r.frames
        for kind, n in (await client.packets_received()).items():
            frames[f"{kind}_packets"] = n
        print(f"FRAMES {time.monotonic():.3f} " + json.dumps(frames), flush=True)
        await asyncio.sleep(0.5)


async def main(args: argparse.Namespace) -> dict[str, object]:
    result: dict[str, object] = {}
    started = time.monotonic()
    ice = await check(args.url, result) if args.check else None
    result["check_seconds"] = round(time.monotonic() - started, 2)
    async with session(args.url, ice) as client:
        started = time.monotonic()
        if args.publish == "av":
            await client.publish(Tone(), MovingPicture(160, 120, 30))
        else:
            await client.publish(Tone(amplitude=0.5))
        result["published_in"] = round(time.monotonic() - started, 2)
        print("READY", flush=True)
        if args.watch:
            await watch(client, args.seconds)
        else:
            # SIGUSR1 ends the wait early: the test sends it once its other peer is done.
            done = asyncio.Event()
            asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, done.set)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(args.seconds):
                    await done.wait()
        result["received"] = {
            f"{r.kind}:{client.tracks.get(mid, {}).get('userId')}": r.frames
            for mid, r in client.received.items()
        }
        result["local_candidate_types"] = sorted(client.candidate_types())
        # Reported before the connections close: the test needs no teardown to read it.
        print("RESULT " + json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--publish", choices=["av", "audio"], default="audio")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--check", action="store_true")
    parser.add_argument("--watch", action="store_true")
    asyncio.run(main(parser.parse_args()))
    sys.exit(0)
