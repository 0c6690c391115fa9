"""A participant in Python (aiortc): the tests', the benchmark's and the self-check's client.

It speaks the signaling protocol of docs/sfu.md over any text transport: give it an
async ``send`` and feed it the server's messages with :meth:`CallClient.deliver`.
Received media is read (decoded, unless ``decode=False``) and counted per slot.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcconfiguration import RTCBundlePolicy, RTCIceTransportPolicy

log = logging.getLogger("inkroom.sfu.client")

Send = Callable[[str], Awaitable[None]]


@dataclass
class Received:
    """What arrived on one slot (``mid``) of the subscribing connection."""

    mid: str
    kind: str
    frames: int = 0
    first_at: float | None = None
    last_at: float | None = None
    times: list[float] = field(default_factory=list)
    sizes: set[tuple[int, int]] = field(default_factory=set)

    def count(self, frame: Any) -> None:
        now = time.monotonic()
        self.frames += 1
        self.first_at = self.first_at or now
        self.last_at = now
        self.times.append(now)
        if len(self.times) > 4096:
            del self.times[:2048]
        width = getattr(frame, "width", None)
        if width is not None:
            self.sizes.add((width, frame.height))

    def rate(self, since: float, until: float) -> float:
        n = sum(1 for t in self.times if since <= t < until)
        return n / (until - since)


class CallClient:
    """One participant. Use as an async context manager; it owns its reader tasks."""

    def __init__(
        self, send: Send, *, ice_servers: list[RTCIceServer] | None = None, relay_only: bool = False
    ) -> None:
        self._send = send
        self._ice_override = ice_servers
        self._relay_only = relay_only
        self.pub: RTCPeerConnection | None = None
        self.sub: RTCPeerConnection | None = None
        self.joined: dict[str, Any] | None = None
        self.tracks: dict[str, dict[str, Any]] = {}
        self.received: dict[str, Received] = {}
        self.messages: list[dict[str, Any]] = []
        self.errors: list[dict[str, Any]] = []
        self.policy: dict[str, Any] = {}
        self.paused: dict[str, bool] = {}
        self.quality = "full video"  # what the server says it forwards us (docs/sfu.md)
        self.sub_connected_at: float | None = None
        self._waiters: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._tg = asyncio.TaskGroup()
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> CallClient:
        await self._tg.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await self.close()
        finally:
            for task in tuple(self._tasks):
                task.cancel()
            await self._tg.__aexit__(exc_type, exc, tb)

    async def close(self) -> None:
        for pc in (self.pub, self.sub):
            if pc is not None:
                await pc.close()

    # -- signaling ---------------------------------------------------------------------

    async def request(self, message: dict[str, Any]) -> None:
        await self._send(json.dumps(message))

    def _expect(self, kind: str) -> asyncio.Future[dict[str, Any]]:
        future = self._waiters.get(kind)
        if future is None or future.done():
            future = self._waiters[kind] = asyncio.get_running_loop().create_future()
        return future

    def expect(self, kind: str) -> asyncio.Future[dict[str, Any]]:
        """A future for the next server message of ``kind``: take it before the request
        that causes the message, then await it under a deadline."""
        return self._expect(kind)

    async def deliver(self, text: str) -> None:
        """Feeds one server message."""
        message: dict[str, Any] = json.loads(text)
        self.messages.append(message)
        kind = message.get("type", "")
        if kind == "joined":
            self.joined = message
            self.policy = message["policy"]
        elif kind == "tracks":
            self.tracks = message["tracks"]
        elif kind == "policy":
            self.policy = message["policy"]
        elif kind == "quality":
            self.quality = message["state"]
        elif kind == "pause":
            self.paused[message["kind"]] = message["paused"]
        elif kind == "error":
            self.errors.append(message)
        elif kind == "answer" and self.pub is not None:
            await self.pub.setRemoteDescription(RTCSessionDescription(message["sdp"], "answer"))
        elif kind == "offer":
            await self._answer(message["sdp"])
        waiter = self._waiters.pop(kind, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(message)

    def _config(self) -> RTCConfiguration:
        if self._ice_override is not None:
            servers = self._ice_override
        else:
            servers = [
                RTCIceServer(s["urls"], s.get("username"), s.get("credential"))
                for s in (self.joined or {}).get("iceServers", [])
            ]
        policy = RTCIceTransportPolicy.RELAY if self._relay_only else RTCIceTransportPolicy.ALL
        return RTCConfiguration(
            iceServers=servers,
            iceTransportPolicy=policy,
            bundlePolicy=RTCBundlePolicy.MAX_BUNDLE,
        )

    def candidate_types(self) -> set[str]:
        """The types of the local ICE candidates gathered so far (host, srflx, relay)."""
        types = set()
        for pc in (self.pub, self.sub):
            if pc is None:
                continue
            for transceiver in pc.getTransceivers():
                gatherer = transceiver.receiver.transport.transport.iceGatherer
                types |= {c.type for c in gatherer.getLocalCandidates()}
        return types

    async def join(self) -> dict[str, Any]:
        joined = self._expect("joined")
        await self.request({"type": "join"})
        async with asyncio.timeout(10):
            return await joined

    async def publish(self, *tracks: MediaStreamTrack) -> None:
        """Offers the publishing connection with ``tracks`` and waits for the answer."""
        self.pub = RTCPeerConnection(self._config())
        for track in tracks:
            self.pub.addTransceiver(track, direction="sendonly")
        offer = await self.pub.createOffer()
        await self.pub.setLocalDescription(offer)
        answered = self._expect("answer")
        await self.request({"type": "offer", "pc": "pub", "sdp": self.pub.localDescription.sdp})
        async with asyncio.timeout(10):
            await answered

    async def offer_again(self) -> None:
        """Re-offers the publishing connection as it is (after an ``unpublish``, to send
        again) and waits for the answer."""
        assert self.pub is not None
        await self.pub.setLocalDescription(await self.pub.createOffer())
        answered = self._expect("answer")
        await self.request({"type": "offer", "pc": "pub", "sdp": self.pub.localDescription.sdp})
        async with asyncio.timeout(10):
            await answered

    async def reconnect(self, *tracks: MediaStreamTrack) -> None:
        """Fresh connections in the same call (what the browser does when its transport
        fails): close both, send ``reconnect``, publish ``tracks`` again. The server then
        offers a new subscribing connection."""
        await self.close()
        self.pub = self.sub = None
        self.received.clear()
        self.tracks = {}
        self.sub_connected_at = None
        await self.request({"type": "reconnect"})
        if tracks:
            await self.publish(*tracks)

    async def _answer(self, sdp: str) -> None:
        if self.sub is not None and self.sub.signalingState == "closed":
            log.warning("offer for a closed subscribing connection ignored")
            return
        if self.sub is None:
            self.sub = RTCPeerConnection(self._config())
            self.sub.on("track", self._on_track)
            self.sub.on("connectionstatechange", self._on_sub_state)
        log.debug("subscribe offer", extra={"state": self.sub.connectionState})
        await self.sub.setRemoteDescription(RTCSessionDescription(sdp, "offer"))
        answer = await self.sub.createAnswer()
        await self.sub.setLocalDescription(answer)
        await self.request({"type": "answer", "pc": "sub", "sdp": self.sub.localDescription.sdp})

    def _on_sub_state(self) -> None:
        if self.sub is not None and self.sub.connectionState == "connected":
            self.sub_connected_at = self.sub_connected_at or time.monotonic()

    def _on_track(self, track: MediaStreamTrack) -> None:
        assert self.sub is not None
        mid = next((t.mid for t in self.sub.getTransceivers() if t.receiver.track is track), None)
        received = Received(mid or "?", track.kind)
        self.received[received.mid] = received
        task = self._tg.create_task(self._read(track, received), name=f"read:{mid}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _read(track: MediaStreamTrack, received: Received) -> None:
        try:
            while True:
                received.count(await track.recv())
        except MediaStreamError:
            return

    # -- what arrived --------------------------------------------------------------------

    async def packets_received(self) -> dict[str, int]:
        """RTP packets received so far per kind (``inbound-rtp`` statistics): what
        reaches this client, before aiortc's jitter buffer, which stalls on every gap
        where a browser's would conceal it."""
        counts = {"audio": 0, "video": 0}
        if self.sub is None:
            return counts
        for stats in (await self.sub.getStats()).values():
            if stats.type == "inbound-rtp":
                counts[stats.kind] = counts.get(stats.kind, 0) + stats.packetsReceived
        return counts

    def slots_of(self, participant: str, kind: str) -> list[Received]:
        return [
            self.received[mid]
            for mid, info in self.tracks.items()
            if info.get("participant") == participant
            and info["kind"] == kind
            and mid in self.received
        ]
