"""Every touch of aiortc's (and aioice's) internals, in this one module.

aiortc is an endpoint library: it decodes what it receives and encodes what it sends. An
SFU forwards encoded packets instead, so it reaches below the public API at the points
listed in :data:`HOOKS`, each marked ``HOOK n`` where it is used. aiortc is pinned exactly
in pyproject.toml (:data:`AIORTC_VERSION`); ``tests/sfu/test_hooks.py`` checks every hook
against the installed aiortc and fails loudly, naming the hook, when an upgrade moves one.
Nothing else in Inkroom may use a private name of aiortc.
"""

from __future__ import annotations

import asyncio
import inspect
import queue
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aioice.ice
import aiortc
import aiortc.codecs
import aiortc.rtcpeerconnection
import aiortc.rtcrtpreceiver
from aiortc import MediaStreamTrack, RTCRtpReceiver, RTCRtpSender
from aiortc.codecs import is_rtx
from aiortc.rate import RemoteBitrateEstimator
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcpeerconnection import RTCPeerConnection
from aiortc.rtcrtpparameters import RTCRtpCodecParameters, RTCRtpSendParameters
from aiortc.rtcrtpreceiver import NackGenerator, StreamStatistics
from aiortc.rtp import (
    RTCP_PSFB_APP,
    RTCP_PSFB_FIR,
    RTCP_PSFB_PLI,
    RTCP_RTPFB_NACK,
    AnyRtcpPacket,
    HeaderExtensionsMap,
    RtcpPsfbPacket,
    RtcpRrPacket,
    RtcpRtpfbPacket,
    RtcpSrPacket,
    RtpPacket,
    pack_remb_fci,
    unpack_remb_fci,
    unwrap_rtx,
    wrap_rtx,
)

AIORTC_VERSION = "1.16.0"

# (hook number, what is touched, where it is used) -- checked by check_hooks().
HOOKS: list[tuple[int, str, str]] = [
    (1, "RTCRtpReceiver._handle_rtp_packet (instance override)", "Ingest"),
    (
        2,
        "RTCRtpReceiver private state: __codecs, __rtx_ssrc, __remote_streams, __rtcp_ssrc",
        "Ingest",
    ),
    (3, "RTCRtpReceiver._send_rtcp / _send_rtcp_nack / _send_rtcp_pli", "Ingest"),
    (4, "RTCRtpSender.send (instance override)", "Egress"),
    (5, "RTCRtpSender._handle_rtcp_packet (instance override)", "Egress"),
    (
        6,
        "RTCRtpSender SR counters: __packet_count, __octet_count, __rtp_timestamp, "
        "__ntp_timestamp; _ssrc, _rtx_ssrc",
        "Egress",
    ),
    (7, "RTCDtlsTransport._send_rtp", "Egress"),
    (8, "aioice.ice.get_host_addresses (module function, replaced)", "use_loopback_only"),
    (
        9,
        "aiortc.rtcrtpreceiver.decoder_worker (module function, replaced)",
        "count_frames_without_decoding",
    ),
    (10, "aiortc.codecs.CODECS (Opus fmtp parameters, edited)", "ask_for_opus_fec_and_dtx"),
    (11, "RTCRtpSender.__rtt (read after a receiver report)", "Egress"),
]

RtpHandler = Callable[[RtpPacket, RTCRtpCodecParameters], Awaitable[None]]


def _ntp_now() -> int:
    # aiortc.clock.current_ntp_time, computed here: 64-bit NTP from the wall clock.
    return int((time.time() + 2208988800) * (1 << 32))


class IdleTrack(MediaStreamTrack):
    """Given to each forwarding sender so that aiortc's own send loop waits forever.

    ``RTCRtpSender._run_rtp`` polls every 20 ms when it has no track; with this one it
    blocks in :meth:`recv` until the sender is stopped (which cancels it).
    """

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self._never = asyncio.Event()

    async def recv(self) -> Any:
        await self._never.wait()
        raise AssertionError("unreachable")


class Ingest:
    """Takes over a publisher's ``RTCRtpReceiver``: packets go to ``on_packet``, never to a
    jitter buffer or a decoder.

    Kept from aiortc's own receive path, re-done here: receiver reports (statistics),
    RTX unwrapping, NACKs toward the publisher for missing video packets, and REMB (the
    publisher's encoder follows it). Dropped: depayloading, the jitter buffer and the
    decoder queue, which cost most of a publisher's ingest and which an SFU never needs.
    """

    def __init__(self, receiver: RTCRtpReceiver, kind: str, on_packet: RtpHandler) -> None:
        self._receiver = receiver
        self.on_packet = on_packet  # where packets go; may be re-pointed to a new track
        # HOOK 2: the receiver's negotiated codecs and RTX SSRC map are filled in by its
        # receive() before the transport routes any packet to it; the statistics dict is
        # what its RTCP loop reads to send receiver reports.
        self._codecs: dict[int, RTCRtpCodecParameters] = receiver._RTCRtpReceiver__codecs  # type: ignore[attr-defined]
        self._rtx_ssrc: dict[int, int] = receiver._RTCRtpReceiver__rtx_ssrc  # type: ignore[attr-defined]
        self._streams: dict[int, StreamStatistics] = receiver._RTCRtpReceiver__remote_streams  # type: ignore[attr-defined]
        video = kind == "video"
        self._nack = NackGenerator() if video else None
        self._remb = RemoteBitrateEstimator() if video else None
        self.media_ssrc: int | None = None
        # An upper bound on the REMB sent to the publisher (bits/s): set when every
        # viewer of this video is on a weak link, so the publisher's encoder sends less.
        self.cap: int | None = None
        self._remb_ssrcs: list[int] = []
        self.packets = 0
        self.bytes = 0
        # HOOK 1: the DTLS transport routes each parsed packet to the receiver's
        # _handle_rtp_packet attribute; an instance attribute shadows the method.
        receiver._handle_rtp_packet = self._handle  # type: ignore[method-assign]

    def _rtcp_ssrc(self) -> int | None:
        value: int | None = self._receiver._RTCRtpReceiver__rtcp_ssrc  # type: ignore[attr-defined]  # HOOK 2
        return value

    async def _handle(self, packet: RtpPacket, arrival_time_ms: int) -> None:
        if self._remb is not None and packet.extensions.abs_send_time is not None:
            remb = self._remb.add(
                abs_send_time=packet.extensions.abs_send_time,
                arrival_time_ms=arrival_time_ms,
                payload_size=len(packet.payload) + packet.padding_size,
                ssrc=packet.ssrc,
            )
            if remb is not None:
                bitrate, self._remb_ssrcs = remb
                if self.cap is not None:
                    bitrate = min(bitrate, self.cap)
                await self._send_remb(bitrate)
        codec = self._codecs.get(packet.payload_type)
        if codec is None:
            return
        stats = self._streams.get(packet.ssrc)
        if stats is None:
            stats = self._streams[packet.ssrc] = StreamStatistics(codec.clockRate)
        stats.add(packet)
        if is_rtx(codec):
            original_ssrc = self._rtx_ssrc.get(packet.ssrc, self.media_ssrc)
            apt = codec.parameters.get("apt")
            if original_ssrc is None or len(packet.payload) < 2 or apt not in self._codecs:
                return
            assert isinstance(apt, int)
            packet = unwrap_rtx(packet, payload_type=apt, ssrc=original_ssrc)
            codec = self._codecs[apt]
        else:
            self.media_ssrc = packet.ssrc
        if self._nack is not None and self._nack.add(packet):
            await self._receiver._send_rtcp_nack(packet.ssrc, sorted(self._nack.missing))  # HOOK 3
        self.packets += 1
        self.bytes += len(packet.payload)
        await self.on_packet(packet, codec)

    async def _send_remb(self, bitrate: int) -> None:
        ssrc = self._rtcp_ssrc()
        ssrcs = self._remb_ssrcs or ([self.media_ssrc] if self.media_ssrc is not None else [])
        if ssrc is None or not ssrcs:
            return
        fci = pack_remb_fci(bitrate, ssrcs)
        feedback = RtcpPsfbPacket(fmt=RTCP_PSFB_APP, ssrc=ssrc, media_ssrc=0, fci=fci)
        await self._receiver._send_rtcp(feedback)  # HOOK 3

    async def set_cap(self, cap: int | None) -> None:
        """Caps the publisher's bitrate at ``cap`` bits/s (``None``: its link decides).
        A new cap is sent at once; the estimator's next REMB lifts a removed one."""
        self.cap = cap
        if cap is not None:
            await self._send_remb(cap)

    async def request_keyframe(self) -> bool:
        """Sends a PLI to the publisher; ``False`` if no media has arrived yet."""
        if self.media_ssrc is None:
            return False
        await self._receiver._send_rtcp_pli(self.media_ssrc)  # HOOK 3
        return True


class Egress:
    """Takes over a subscriber's ``RTCRtpSender``: the forwarder sends ready-made RTP
    packets through it, and its incoming RTCP feedback goes to the callbacks.

    NACKs are answered by the forwarder's own history (deeper than aiortc's 128 packets);
    PLI/FIR and REMB, dead ends for a sender without an encoder, reach the forwarder.
    Sender reports stay truthful: aiortc's RTCP loop reads the counters kept here.
    """

    def __init__(
        self,
        sender: RTCRtpSender,
        *,
        on_ready: Callable[[], None],
        on_nack: Callable[[list[int]], Awaitable[None]],
        on_keyframe_request: Callable[[], None],
        on_remb: Callable[[int], None],
        on_report: Callable[[float, float | None], None],
    ) -> None:
        self._sender = sender
        self._on_report = on_report
        self._on_ready = on_ready
        self._on_nack = on_nack
        self._on_keyframe_request = on_keyframe_request
        self._on_remb = on_remb
        self.ready = False
        self.payload_type = 0
        self.rtx_payload_type: int | None = None
        self.mid: str | None = None
        self.ssrc: int = sender._ssrc  # HOOK 6
        self._rtx_ssrc: int = sender._rtx_ssrc  # HOOK 6
        self._rtx_seq = 0
        self._extensions = HeaderExtensionsMap()
        self.packets = 0
        self.octets = 0
        # HOOK 4: RTCPeerConnection calls sender.send(parameters) once the transport is
        # connected; the negotiated payload types, header extension ids and mid come
        # from there. HOOK 5: RTCP feedback is routed to sender._handle_rtcp_packet.
        self._original_send = sender.send
        self._original_rtcp = sender._handle_rtcp_packet
        sender.send = self._send_parameters  # type: ignore[method-assign]
        sender._handle_rtcp_packet = self._handle_rtcp  # type: ignore[method-assign]

    async def _send_parameters(self, parameters: RTCRtpSendParameters) -> None:
        if not self.ready:
            primary = parameters.codecs[0]
            assert primary.payloadType is not None  # always set once negotiated
            self.payload_type = primary.payloadType
            for codec in parameters.codecs:
                if is_rtx(codec) and codec.parameters.get("apt") == primary.payloadType:
                    self.rtx_payload_type = codec.payloadType
            self.mid = parameters.muxId
            self._extensions.configure(parameters)
        await self._original_send(parameters)
        if not self.ready:
            self.ready = True
            self._on_ready()

    async def _handle_rtcp(self, packet: AnyRtcpPacket) -> None:
        if isinstance(packet, RtcpRtpfbPacket) and packet.fmt == RTCP_RTPFB_NACK:
            await self._on_nack(list(packet.lost))
        elif isinstance(packet, RtcpPsfbPacket) and packet.fmt in (RTCP_PSFB_PLI, RTCP_PSFB_FIR):
            self._on_keyframe_request()
        elif isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_APP:
            try:
                bitrate, ssrcs = unpack_remb_fci(packet.fci)
            except ValueError:
                return
            if self.ssrc in ssrcs:
                self._on_remb(bitrate)
        else:  # receiver reports: aiortc keeps round-trip time and loss statistics
            await self._original_rtcp(packet)
            if isinstance(packet, RtcpRrPacket | RtcpSrPacket):
                for report in packet.reports:
                    if report.ssrc == self.ssrc:
                        # HOOK 11: the sender's smoothed round trip, which aiortc has just
                        # updated from this report's LSR/DLSR (None before any SR).
                        rtt: float | None = self._sender._RTCRtpSender__rtt  # type: ignore[attr-defined]
                        self._on_report(report.fraction_lost / 256, rtt)

    async def send(self, packet: RtpPacket) -> None:
        """Serializes and sends one packet; raises ``ConnectionError`` if not connected."""
        packet.extensions.mid = self.mid
        data = packet.serialize(self._extensions)
        transport: RTCDtlsTransport = self._sender.transport
        await transport._send_rtp(data)  # HOOK 7: SRTP-protect and send on the ICE pair
        self.packets += 1
        self.octets += len(packet.payload)
        sender = self._sender
        # HOOK 6: the counters aiortc's RTCP loop puts in each sender report.
        sender._RTCRtpSender__packet_count = self.packets  # type: ignore[attr-defined]
        sender._RTCRtpSender__octet_count = self.octets  # type: ignore[attr-defined]
        sender._RTCRtpSender__rtp_timestamp = packet.timestamp  # type: ignore[attr-defined]
        sender._RTCRtpSender__ntp_timestamp = _ntp_now()  # type: ignore[attr-defined]

    async def resend(self, packet: RtpPacket) -> None:
        """Retransmits a packet from history, in RTX when the subscriber negotiated it."""
        if self.rtx_payload_type is not None:
            packet = wrap_rtx(
                packet,
                payload_type=self.rtx_payload_type,
                sequence_number=self._rtx_seq,
                ssrc=self._rtx_ssrc,
            )
            self._rtx_seq = (self._rtx_seq + 1) & 0xFFFF
        data = packet.serialize(self._extensions)
        await self._sender.transport._send_rtp(data)  # HOOK 7


def use_loopback_only() -> None:
    """Makes every ICE agent of this process gather 127.0.0.1 only (tests and benches).

    HOOK 8: aioice skips the loopback address when it lists host addresses.
    """

    def loopback(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return ["127.0.0.1"] if use_ipv4 else []

    aioice.ice.get_host_addresses = loopback


def count_frames_without_decoding() -> None:
    """Makes every receiver of this process hand its track the *encoded* frames it
    assembles instead of decoding them: a benchmark's subscribers then count frames
    without spending the cores the relay is measured on.

    HOOK 9: RTCRtpReceiver.receive() starts ``decoder_worker`` looked up as a module
    global at call time, with the track's queue as its output.
    """

    def passthrough(
        loop: asyncio.AbstractEventLoop,
        input_q: queue.Queue[Any],
        output_q: asyncio.Queue[Any],
        decode_error: threading.Event,
    ) -> None:
        while True:
            task = input_q.get()
            if task is None:
                asyncio.run_coroutine_threadsafe(output_q.put(None), loop)
                return
            asyncio.run_coroutine_threadsafe(output_q.put(task[1]), loop)

    aiortc.rtcrtpreceiver.decoder_worker = passthrough


OPUS_FMTP = {"useinbandfec": 1, "usedtx": 1}


def ask_for_opus_fec_and_dtx() -> None:
    """Makes this process's descriptions ask Opus senders for in-band FEC (loss
    resilience) and DTX (a silent microphone sends almost nothing), as ``fmtp`` parameters.

    HOOK 10: aiortc copies its codec table's parameters into every offer and answer; the
    table has no public setter. A browser publishing to the SFU reads them in the answer.
    """
    for codec in aiortc.codecs.CODECS["audio"]:
        if codec.mimeType.lower() == "audio/opus":
            codec.parameters.update(OPUS_FMTP)


def _source(obj: Any) -> str:
    return inspect.getsource(obj)


def check_hooks() -> list[str]:
    """What no longer holds in the installed aiortc/aioice, one line per broken hook."""
    problems: list[str] = []

    def need(hook: int, ok: bool, what: str) -> None:
        if not ok:
            problems.append(f"HOOK {hook}: {what}")

    need(
        0,
        aiortc.__version__ == AIORTC_VERSION,
        f"aiortc {aiortc.__version__} installed, hooks written for {AIORTC_VERSION}",
    )
    dtls_rtp = _source(RTCDtlsTransport._handle_rtp_data)
    dtls_rtcp = _source(RTCDtlsTransport._handle_rtcp_data)
    need(
        1,
        "receiver._handle_rtp_packet(packet, arrival_time_ms=" in dtls_rtp,
        "the transport no longer calls receiver._handle_rtp_packet(packet, arrival_time_ms=)",
    )
    receiver_init = _source(RTCRtpReceiver.__init__)
    for name in ("__codecs", "__rtx_ssrc", "__remote_streams", "__rtcp_ssrc"):
        need(2, f"self.{name}" in receiver_init, f"RTCRtpReceiver has no {name}")
    need(
        2,
        "self.__remote_streams.items()" in _source(RTCRtpReceiver._run_rtcp),
        "receiver reports no longer come from __remote_streams",
    )
    for method in ("_send_rtcp", "_send_rtcp_nack", "_send_rtcp_pli"):
        need(
            3,
            inspect.iscoroutinefunction(getattr(RTCRtpReceiver, method, None)),
            f"RTCRtpReceiver.{method} is gone or no longer a coroutine",
        )
    connect = _source(RTCPeerConnection._RTCPeerConnection__connect)  # type: ignore[attr-defined]
    need(
        4,
        "transceiver.sender.send(self.__localRtp(transceiver))" in connect,
        "the peer connection no longer starts senders with sender.send(parameters)",
    )
    need(
        5,
        "recipient._handle_rtcp_packet(packet)" in dtls_rtcp,
        "RTCP is no longer routed to recipient._handle_rtcp_packet",
    )
    sender_init = _source(RTCRtpSender.__init__)
    run_rtcp = _source(RTCRtpSender._run_rtcp)
    for name in ("__packet_count", "__octet_count", "__rtp_timestamp", "__ntp_timestamp"):
        need(
            6,
            f"self.{name}" in sender_init and f"self.{name}" in run_rtcp,
            f"sender reports no longer use RTCRtpSender.{name}",
        )
    need(
        6,
        "self._ssrc = " in sender_init and "self._rtx_ssrc = " in sender_init,
        "RTCRtpSender has no _ssrc/_rtx_ssrc",
    )
    need(
        7,
        inspect.iscoroutinefunction(getattr(RTCDtlsTransport, "_send_rtp", None)),
        "RTCDtlsTransport._send_rtp is gone or no longer a coroutine",
    )
    params = list(inspect.signature(aioice.ice.get_host_addresses).parameters)
    need(8, params == ["use_ipv4", "use_ipv6"], "aioice.ice.get_host_addresses changed")
    need(
        8,
        "get_host_addresses(" in _source(aioice.ice.Connection.gather_candidates),
        "aioice no longer gathers host addresses through get_host_addresses",
    )
    worker = inspect.signature(aiortc.rtcrtpreceiver.decoder_worker).parameters
    need(
        9,
        list(worker) == ["loop", "input_q", "output_q", "decode_error"],
        "decoder_worker(loop, input_q, output_q, decode_error) changed",
    )
    need(
        9,
        "target=decoder_worker" in _source(RTCRtpReceiver.receive),
        "receive() no longer starts the module-level decoder_worker",
    )
    opus = [c for c in aiortc.codecs.CODECS["audio"] if c.mimeType.lower() == "audio/opus"]
    need(
        10,
        len(opus) == 1 and isinstance(opus[0].parameters, dict),
        "aiortc.codecs.CODECS['audio'] no longer holds one Opus entry with parameters",
    )
    need(
        10,
        "copy.deepcopy(codec)" in _source(aiortc.rtcpeerconnection.find_common_codecs),
        "descriptions no longer copy the local codec table's parameters",
    )
    sender_rtcp = _source(RTCRtpSender._handle_rtcp_packet)
    need(
        11,
        "self.__rtt = " in sender_rtcp and "self.__rtt" in sender_init,
        "RTCRtpSender no longer keeps its round trip in __rtt",
    )
    return problems
