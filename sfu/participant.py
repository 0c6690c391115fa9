"""One participant of a call: its publishing and subscribing peer connections.

Two connections per participant, as LiveKit does: the client offers ``pub`` (what it
sends; the server answers), the server offers ``sub`` (what it forwards; the client
answers). Each side then only ever answers the other's offers on a given connection,
so the two never race to offer (no glare), and a new publisher elsewhere in the call
only renegotiates ``sub``. The server's descriptions carry all of its ICE candidates
(aiortc gathers before it answers); the client may trickle its own.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NewType

from aiortc import (
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpReceiver,
    RTCRtpSender,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc.rtcconfiguration import RTCBundlePolicy
from aiortc.sdp import SessionDescription, candidate_from_sdp

from .errors import BadState, NegotiationFailed
from .forwarder import Downtrack, LinkSink, PublishedTrack
from .hooks import Egress, IdleTrack, Ingest
from .policy import Kind, Member
from .signaling import Candidate, ServerMessage

log = logging.getLogger("inkroom.sfu.participant")

ParticipantId = NewType("ParticipantId", str)
Outbox = Callable[[ServerMessage], None]
CODECS = {Kind.AUDIO: ("opus",), Kind.VIDEO: ("VP8", "rtx")}


def new_peer_connection() -> RTCPeerConnection:
    # The server gathers host candidates only: clients reach it through TURN if need be.
    return RTCPeerConnection(
        RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
    )


def prefer_codecs(transceiver: RTCRtpTransceiver, kind: Kind) -> None:
    """VP8 (with RTX) and Opus only: every publisher sends what every subscriber takes."""
    codecs = RTCRtpSender.getCapabilities(kind.value).codecs
    transceiver.setCodecPreferences([c for c in codecs if c.mimeType.split("/")[1] in CODECS[kind]])


def _loopback(candidate_line: str) -> bool:
    # "candidate:<foundation> <component> <transport> <priority> <address> <port> typ ..."
    fields = candidate_line.split()
    return len(fields) > 4 and fields[4].startswith("127.")


def loopback_candidates_only(sdp: str) -> str:
    """``sdp`` without its ``a=candidate`` lines for addresses other than 127.0.0.0/8."""
    lines = sdp.split("\r\n")
    kept = [ln for ln in lines if not ln.startswith("a=candidate:") or _loopback(ln)]
    return "\r\n".join(kept)


async def add_candidate(
    pc: RTCPeerConnection | None, message: Candidate, *, loopback_only: bool = False
) -> None:
    """Applies a trickled candidate; an empty one (end of candidates) is ignored.

    Raises:
        BadState: the connection has no remote description yet.
        NegotiationFailed: aiortc refused the candidate.
    """
    if not message.candidate:
        return
    if pc is None or pc.remoteDescription is None:
        raise BadState(f"no {message.pc} connection to add a candidate to")
    if loopback_only and not _loopback(message.candidate.removeprefix("a=")):
        return
    line = message.candidate.removeprefix("a=").removeprefix("candidate:")
    try:
        candidate = candidate_from_sdp(line)
        candidate.sdpMid = message.sdp_mid
        candidate.sdpMLineIndex = message.sdp_mline_index
        await pc.addIceCandidate(candidate)
    except (ValueError, IndexError, KeyError) as exc:
        raise NegotiationFailed(f"candidate refused: {exc}") from exc


@dataclass
class Participant:
    """A member of the call with its connections, tracks and slots."""

    id: ParticipantId
    member: Member
    name: str
    outbox: Outbox
    pub: RTCPeerConnection | None = None
    sub: RTCPeerConnection | None = None
    published: dict[Kind, PublishedTrack] = field(default_factory=dict)
    # Each receiving transceiver of ``pub``, taken over once, and the track it feeds now
    # (a new track after an unpublish and a new offer).
    feeds: dict[RTCRtpReceiver, tuple[Ingest, PublishedTrack]] = field(default_factory=dict)
    muted: set[Kind] = field(default_factory=set)
    audio_only: bool = False
    slots: list[Downtrack] = field(default_factory=list)
    paused: dict[Kind, bool] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)
    # Subscribing-connection negotiation: one offer in flight at a time.
    offer_needed: bool = False
    negotiating: bool = False
    answered: asyncio.Event = field(default_factory=asyncio.Event)
    closed: bool = False
    loopback_only: bool = False
    # The subscriber's downlink as its receiver reports tell it (see sfu/quality.py);
    # the call sets it at join so that a layer change reaches the call's policy.
    link: LinkSink | None = None

    def describe(self) -> dict[str, Any]:
        return {
            "participant": self.id,
            "userId": self.member.user_id,
            "name": self.name,
            "role": self.member.role.value,
            "published": sorted(k.value for k in self.published),
            "muted": sorted(k.value for k in self.muted),
        }

    def send(self, message: ServerMessage) -> None:
        if not self.closed:
            self.outbox(message)

    def slot_for(self, source: PublishedTrack) -> Downtrack | None:
        for slot in self.slots:
            if slot.source is source:
                return slot
        return None

    def add_slot(self, kind: Kind, history_size: int) -> Downtrack:
        """A new sender on the subscribing connection; it carries media once the next
        offer is answered and the connection is up."""
        if self.sub is None:
            self.sub = new_peer_connection()
        transceiver = self.sub.addTransceiver(IdleTrack(kind.value), direction="sendonly")
        prefer_codecs(transceiver, kind)

        def egress(slot: Downtrack) -> Egress:
            return Egress(
                transceiver.sender,
                on_ready=slot.on_ready,
                on_nack=slot.on_nack,
                on_keyframe_request=slot.on_keyframe_request,
                on_remb=slot.on_remb,
                on_report=slot.on_report,
            )

        slot = Downtrack(self.id, kind, egress, history_size, self.link)
        self.slots.append(slot)
        self.offer_needed = True
        return slot

    def slot_mids(self) -> dict[str, Downtrack]:
        assert self.sub is not None
        mids: dict[str, Downtrack] = {}
        transceivers = self.sub.getTransceivers()
        for slot, transceiver in zip(self.slots, transceivers, strict=True):
            if transceiver.mid is not None:
                mids[transceiver.mid] = slot
        return mids

    async def answer_publish(self, sdp: str) -> list[RTCRtpTransceiver]:
        """Applies the client's ``pub`` offer; returns its receiving transceivers.

        Raises:
            NegotiationFailed: aiortc refused the description.
        """
        if self.pub is None:
            self.pub = new_peer_connection()
        pc = self.pub
        if self.loopback_only:
            sdp = loopback_candidates_only(sdp)
        try:
            offered = [m.kind for m in SessionDescription.parse(sdp).media]
        except (ValueError, IndexError, KeyError) as exc:
            raise NegotiationFailed(f"offer refused: {exc}") from exc
        # Receiving transceivers made before the offer is applied take its media
        # sections, so the codec preferences (VP8, Opus) shape the answer.
        have = {t.kind for t in pc.getTransceivers()}
        for kind in Kind:
            if kind.value in offered and kind.value not in have:
                prefer_codecs(pc.addTransceiver(kind.value, direction="recvonly"), kind)
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        except Exception as exc:  # aiortc raises assorted errors for bad SDP
            raise NegotiationFailed(f"offer refused: {exc}") from exc
        return [t for t in pc.getTransceivers() if t.mid is not None]

    async def finish_answer(self) -> str:
        assert self.pub is not None
        answer = await self.pub.createAnswer()
        await self.pub.setLocalDescription(answer)
        return self.pub.localDescription.sdp

    async def offer_subscribe(self) -> str:
        assert self.sub is not None
        self.answered.clear()
        offer = await self.sub.createOffer()
        await self.sub.setLocalDescription(offer)
        return self.sub.localDescription.sdp

    async def accept_answer(self, sdp: str) -> None:
        """Raises ``BadState`` when no offer awaits an answer, ``NegotiationFailed`` when
        aiortc refuses it."""
        if self.sub is None or self.sub.signalingState != "have-local-offer":
            raise BadState("no subscribe offer is waiting for an answer")
        if self.loopback_only:
            sdp = loopback_candidates_only(sdp)
        try:
            await self.sub.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
        except Exception as exc:
            raise NegotiationFailed(f"answer refused: {exc}") from exc
        self.answered.set()

    async def reset_media(self) -> None:
        """Drops both connections and everything on them (published tracks, slots); the
        participant stays in the call. A reconcile then adds slots on a new ``sub``."""
        pcs = (self.pub, self.sub)
        self.pub = self.sub = None
        for track in self.published.values():
            track.close()
        self.published.clear()
        self.feeds.clear()
        for slot in self.slots:
            slot.unbind()
        self.slots.clear()
        self.paused.clear()
        self.offer_needed = False
        self.answered.set()  # a negotiation waiting on the old connection moves on
        await self._close_connections(pcs)

    async def _close_connections(self, pcs: tuple[RTCPeerConnection | None, ...]) -> None:
        for pc in pcs:
            if pc is not None:
                try:
                    async with asyncio.timeout(5):
                        await pc.close()
                except TimeoutError:
                    log.warning("peer connection close timed out", extra={"participant": self.id})

    async def close(self) -> None:
        self.closed = True
        self.answered.set()
        for track in self.published.values():
            track.close()
        for slot in self.slots:
            slot.unbind()
        await self._close_connections((self.pub, self.sub))
