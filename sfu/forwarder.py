"""Packet forwarding: one published track to the subscribers' slots, never decoded.

A :class:`PublishedTrack` is what one publisher sends of one kind. Each subscriber has
:class:`Downtrack` slots (one sender of its subscribing connection each); a slot carries
one published track at a time, and carries it only while policy wants it. Per slot the
SSRC, payload type, sequence numbers and timestamps are rewritten (:mod:`sfu.rewriter`),
header extensions are kept (audio level, abs-send-time; the mid is the slot's), and the
sent packets stay in a history that answers the subscriber's NACKs.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import RtpPacket

from . import metrics
from .codecs import keyframe_start
from .history import PacketHistory
from .hooks import Egress
from .keyframes import KeyframeThrottle
from .policy import Kind, SpeechDetector
from .rewriter import Rewriter

log = logging.getLogger("inkroom.sfu.forwarder")

Spawn = Callable[[Coroutine[Any, Any, None], str], None]


class LinkSink(Protocol):
    """Where a slot's feedback about its subscriber's link goes (one per subscriber)."""

    def report(self, fraction_lost: float, rtt: float | None, video_rate: float | None) -> None:
        """A receiver report block for a stream that carried packets since the last."""

    def remb(self, bitrate: int, video_rate: float) -> None:
        """The subscriber's REMB while this video slot forwards ``video_rate`` bits/s."""


KEYFRAME_RETRY = 1.0  # seconds between keyframe requests while a slot waits for one


class PublishedTrack:
    """One publisher's audio or video as it arrives, and where it goes.

    ``request_keyframe`` asks the publisher for a keyframe through a
    :class:`KeyframeThrottle`: at most one PLI per interval, later requests coalesced into
    one deferred PLI, none dropped.
    """

    def __init__(
        self,
        owner: str,
        kind: Kind,
        *,
        spawn: Spawn,
        keyframe_interval: float,
        on_speaking: Callable[[PublishedTrack], None],
    ) -> None:
        self.owner = owner
        self.kind = kind
        self.codec_name = ""
        self.clock_rate = 90000 if kind is Kind.VIDEO else 48000
        self.downtracks: set[Downtrack] = set()
        self.speaking = False
        self._speech = SpeechDetector()
        # Set by whoever ingests the track: sends one PLI, False if no media came yet.
        self.send_pli: Callable[[], Coroutine[Any, Any, bool]] | None = None
        self._spawn = spawn
        self._throttle = KeyframeThrottle(keyframe_interval)
        self._deferred: asyncio.TimerHandle | None = None
        self._on_speaking = on_speaking
        self.closed = False
        # Arriving payload rate (bits/s), over windows of about a second: what a viewer's
        # link must carry for this track.
        self.rate = 0.0
        self._window_start = 0.0
        self._window_bytes = 0
        # Sends a REMB cap to the publisher (None lifts it); set by whoever ingests it.
        self.send_cap: Callable[[int | None], Coroutine[Any, Any, None]] | None = None
        self.cap: int | None = None

    async def on_packet(self, packet: RtpPacket, codec: RTCRtpCodecParameters) -> None:
        self.codec_name = codec.name
        self.clock_rate = codec.clockRate
        metrics.PACKETS_IN.labels(self.kind.value).inc()
        now = time.monotonic()
        self._window_bytes += len(packet.payload)
        if now - self._window_start >= 1.0:
            if self._window_start:
                self.rate = self._window_bytes * 8 / (now - self._window_start)
            self._window_start, self._window_bytes = now, 0
        if self.kind is Kind.AUDIO:
            level = packet.extensions.audio_level
            speaking = self._speech.add(None if level is None else level[1], time.monotonic())
            if speaking != self.speaking:
                self.speaking = speaking
                self._on_speaking(self)
        for downtrack in tuple(self.downtracks):
            await downtrack.forward(packet, self)

    def check_speaking(self, now: float) -> None:
        """Ends a speaking spell when no packet came to end it (DTX sends nothing)."""
        if self.speaking and not self._speech.speaking(now):
            self.speaking = False
            self._on_speaking(self)

    def set_cap(self, cap: int | None) -> None:
        """Asks the publisher to send at most ``cap`` bits/s (``None``: no cap)."""
        if cap == self.cap or self.closed:
            return
        self.cap = cap
        if self.send_cap is not None:
            self._spawn(self.send_cap(cap), f"cap:{self.owner}")

    def request_keyframe(self) -> None:
        if self.kind is not Kind.VIDEO or self.closed:
            return
        loop = asyncio.get_running_loop()
        delay = self._throttle.request(loop.time())
        if delay is None:
            metrics.KEYFRAME_REQUESTS.labels("coalesced").inc()
        elif delay == 0.0:
            self._spawn(self._pli(), f"pli:{self.owner}")
        else:
            metrics.KEYFRAME_REQUESTS.labels("deferred").inc()
            self._deferred = loop.call_later(delay, self._fire)

    def _fire(self) -> None:
        self._deferred = None
        self._throttle.fire(asyncio.get_running_loop().time())
        if not self.closed:
            self._spawn(self._pli(), f"pli:{self.owner}")

    async def _pli(self) -> None:
        if self.send_pli is not None and await self.send_pli():
            metrics.KEYFRAME_REQUESTS.labels("sent").inc()

    def close(self) -> None:
        self.closed = True
        if self._deferred is not None:
            self._deferred.cancel()
        for downtrack in tuple(self.downtracks):
            downtrack.unbind()


class Downtrack:
    """One slot of a subscriber's connection: a sender carrying one published track."""

    def __init__(
        self,
        subscriber: str,
        kind: Kind,
        egress_factory: Callable[[Downtrack], Egress],
        history_size: int,
        link: LinkSink | None = None,
    ) -> None:
        self.subscriber = subscriber
        self.kind = kind
        self.source: PublishedTrack | None = None
        self.wanted = False
        self.bandwidth: int | None = None  # the subscriber's last REMB, bits/s
        self._rewriter = Rewriter(random.getrandbits(15), random.getrandbits(32))
        self._history: PacketHistory[RtpPacket] = PacketHistory(history_size)
        self._last_sent = 0.0
        self._asked_at = 0.0
        self.forwarded = 0
        self._forwarded_at_report = 0
        self._link = link
        self.egress = egress_factory(self)

    @property
    def mid(self) -> str | None:
        return self.egress.mid

    def bind(self, source: PublishedTrack) -> None:
        if self.source is source:
            return
        self.unbind()
        self.source = source
        source.downtracks.add(self)

    def unbind(self) -> None:
        if self.source is not None:
            self.source.downtracks.discard(self)
        self.source = None
        self.set_wanted(False)

    def set_wanted(self, wanted: bool) -> None:
        if wanted == self.wanted:
            return
        self.wanted = wanted
        if not wanted:
            self._rewriter.pause()
        elif self.source is not None and self.egress.ready:
            self.source.request_keyframe()  # a new viewer gets a picture at once

    def on_ready(self) -> None:
        if self.wanted and self.source is not None:
            self.source.request_keyframe()

    def on_keyframe_request(self) -> None:
        if self.source is not None:
            self.source.request_keyframe()

    def on_remb(self, bitrate: int) -> None:
        self.bandwidth = bitrate
        if self._link is not None and self.wanted and self.source is not None:
            self._link.remb(bitrate, self.source.rate)

    def on_report(self, fraction_lost: float, rtt: float | None) -> None:
        # A report on a stream that carried nothing since the last one says "no loss"
        # about nothing: a paused slot must not vouch for the link.
        if self.forwarded == self._forwarded_at_report:
            return
        self._forwarded_at_report = self.forwarded
        if self._link is not None:
            rate = self.source.rate if self.source and self.kind is Kind.VIDEO else None
            self._link.report(fraction_lost, rtt, rate)

    async def on_nack(self, lost: list[int]) -> None:
        for seq in lost:
            packet = self._history.get(seq)
            if packet is None:
                metrics.NACKS.labels("missed").inc()
                continue
            try:
                await self.egress.resend(packet)
            except ConnectionError:
                return
            metrics.NACKS.labels("answered").inc()

    async def forward(self, packet: RtpPacket, source: PublishedTrack) -> None:
        if not self.wanted or not self.egress.ready:
            return
        if not self._rewriter.active:
            now = time.monotonic()
            if self.kind is Kind.VIDEO and not keyframe_start(source.codec_name, packet.payload):
                # The first packet of a run starts a picture, or nothing is sent. Keep
                # asking while waiting: a publisher may ignore a request (libwebrtc drops
                # those closer than 300 ms to its last keyframe).
                if now - self._asked_at >= KEYFRAME_RETRY:
                    self._asked_at = now
                    source.request_keyframe()
                return
            gap = int((now - self._last_sent) * source.clock_rate)
            self._rewriter.resume(packet.sequence_number, packet.timestamp, gap)
        mapped = self._rewriter.map(packet.sequence_number, packet.timestamp)
        if mapped is None:
            return
        out = RtpPacket(
            payload_type=self.egress.payload_type,
            marker=packet.marker,
            sequence_number=mapped[0],
            timestamp=mapped[1],
            ssrc=self.egress.ssrc,
            payload=packet.payload,
        )
        extensions = out.extensions
        extensions.abs_send_time = packet.extensions.abs_send_time
        extensions.audio_level = packet.extensions.audio_level
        extensions.transmission_offset = packet.extensions.transmission_offset
        if self.kind is Kind.VIDEO:
            self._history.put(out.sequence_number, out)
        try:
            await self.egress.send(out)
        except ConnectionError:
            return
        self._last_sent = time.monotonic()
        self.forwarded += 1
        metrics.PACKETS_OUT.labels(self.kind.value).inc()
        metrics.BYTES_OUT.labels(self.kind.value).inc(len(out.payload))
