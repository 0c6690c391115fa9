"""A classroom's call: its participants, its policy, and who is forwarded to whom."""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from . import metrics
from .errors import BadState, CallFull, Forbidden, SfuError
from .forwarder import PublishedTrack
from .hooks import Ingest
from .participant import Outbox, Participant, ParticipantId, add_candidate
from .policy import ClassPolicy, Kind, Member, Role, forwards
from .quality import Layer, LinkEstimate
from .signaling import (
    Answer,
    AudioOnly,
    Candidate,
    ClientMessage,
    Description,
    Join,
    Mute,
    Offer,
    ParticipantJoined,
    ParticipantLeft,
    ParticipantState,
    Pause,
    PolicyChanged,
    Quality,
    Reconnect,
    Speaking,
    Stats,
    Tracks,
    Unpublish,
)

log = logging.getLogger("inkroom.sfu.call")

Spawn = Callable[[Coroutine[Any, Any, None], str], None]


@dataclass(frozen=True, slots=True)
class SfuConfig:
    """Tunables of the forwarding unit."""

    # At most one PLI per publisher per interval; above libwebrtc's own 300 ms floor, under
    # which a browser ignores the request.
    keyframe_interval: float = 0.35
    video_history: int = 1024  # packets kept per video slot to answer NACKs (~5 s at 2 Mb/s)
    max_participants: int = 100
    negotiation_timeout: float = 15.0
    speech_check_interval: float = 0.1
    # Media on 127.0.0.1 only, both ways: the server gathers loopback candidates and
    # ignores a client's other ones (tests and single-machine development).
    loopback_only: bool = False
    # The bitrate asked of a publisher whose every viewer is on a weak link ("low video").
    low_video_bitrate: int = 150_000


class Link:
    """A participant's downlink estimate, wired to its call: a change of layer is told to
    the participant and re-derives what is forwarded (see :mod:`sfu.quality`)."""

    def __init__(self, call: Call, participant: Participant) -> None:
        self.estimate = LinkEstimate(time.monotonic())
        self._call = call
        self._participant = participant

    @property
    def layer(self) -> Layer:
        return self.estimate.layer

    def report(self, fraction_lost: float, rtt: float | None, video_rate: float | None) -> None:
        now = time.monotonic()
        self._changed(self.estimate.add_report(fraction_lost, rtt, now))

    def remb(self, bitrate: int, video_rate: float) -> None:
        self.estimate.add_remb(bitrate)

    def tick(self, now: float) -> None:
        self._changed(self.estimate.tick(now))

    def _changed(self, layer: Layer | None) -> None:
        if layer is not None and not self._participant.closed:
            self._call.on_layer(self._participant, layer)


def layer_of(participant: Participant) -> Layer:
    link = participant.link
    return link.layer if isinstance(link, Link) else Layer.FULL


class Call:
    """One call per classroom, opened on first join and closed when the last one leaves.

    Every change (a join, a publish, a policy change, a voice starting) ends in
    :meth:`reconcile`, which derives from scratch which slot carries which track and
    whether it forwards now, so no incremental bookkeeping can drift from the policy.
    """

    def __init__(
        self, classroom: str, config: SfuConfig, spawn: Spawn, policy: ClassPolicy | None = None
    ) -> None:
        self.classroom = classroom
        self.config = config
        self._spawn = spawn
        self.policy = policy or ClassPolicy()
        self.participants: dict[ParticipantId, Participant] = {}
        self._ids = itertools.count(1)
        self.placed = False  # whether this node holds the call's lease (sfu/placement.py)

    def __repr__(self) -> str:
        return f"Call({self.classroom!r}, participants={len(self.participants)})"

    # -- membership ------------------------------------------------------------------

    def join(self, member: Member, name: str, outbox: Outbox) -> Participant:
        """Raises ``CallFull`` at ``max_participants``."""
        if len(self.participants) >= self.config.max_participants:
            raise CallFull(f"the call holds {self.config.max_participants} participants")
        pid = ParticipantId(f"p{next(self._ids)}-{secrets.token_hex(3)}")
        participant = Participant(
            pid, member, name, outbox, loopback_only=self.config.loopback_only
        )
        participant.link = Link(self, participant)
        for other in self.participants.values():
            other.send(ParticipantJoined(participant.describe()))
        self.participants[pid] = participant
        metrics.PARTICIPANTS.inc()
        self.reconcile()
        return participant

    async def leave(self, participant: Participant) -> None:
        if self.participants.pop(participant.id, None) is None:
            return
        metrics.PARTICIPANTS.dec()
        await participant.close()
        for other in self.participants.values():
            other.send(ParticipantLeft(participant.id))
        self.reconcile()

    def roster(self) -> list[dict[str, Any]]:
        return [p.describe() for p in self.participants.values()]

    # -- messages --------------------------------------------------------------------

    async def handle(self, participant: Participant, message: ClientMessage) -> None:
        """Acts on one client message.

        Raises:
            SfuError: this request failed (the reply is an ``error``); the call goes on.
        """
        if isinstance(message, Offer):
            await self._publish(participant, message.sdp)
        elif isinstance(message, Answer):
            await participant.accept_answer(message.sdp)
        elif isinstance(message, Candidate):
            pc = participant.pub if message.pc == "pub" else participant.sub
            await add_candidate(pc, message, loopback_only=participant.loopback_only)
        elif isinstance(message, Unpublish):
            track = participant.published.pop(message.kind, None)
            if track is not None:
                track.close()
                self._announce(participant)
                self.reconcile()
        elif isinstance(message, Mute):
            if message.muted:
                participant.muted.add(message.kind)
            else:
                participant.muted.discard(message.kind)
            self._announce(participant)
            self.reconcile()
        elif isinstance(message, AudioOnly):
            participant.audio_only = message.enabled
            self.reconcile()
        elif isinstance(message, Stats):
            participant.stats = message.report
        elif isinstance(message, Reconnect):
            await participant.reset_media()
            self._announce(participant)
            self.reconcile()
        elif isinstance(message, Join):
            raise BadState("already joined")

    async def _publish(self, participant: Participant, sdp: str) -> None:
        if participant.member.role is Role.OBSERVER:
            raise Forbidden("observers receive and never publish")
        fresh = False
        for transceiver in await participant.answer_publish(sdp):
            receiver = transceiver.receiver
            feed = participant.feeds.get(receiver)
            if feed is not None and not feed[1].closed:
                continue  # already feeding a live track
            kind = Kind(transceiver.kind)
            track = PublishedTrack(
                participant.id,
                kind,
                spawn=self._spawn,
                keyframe_interval=self.config.keyframe_interval,
                on_speaking=self._on_speaking,
            )
            ingest = feed[0] if feed is not None else Ingest(receiver, kind.value, track.on_packet)
            ingest.on_packet = track.on_packet
            track.send_pli = ingest.request_keyframe
            track.send_cap = ingest.set_cap
            participant.feeds[receiver] = (ingest, track)
            old = participant.published.get(kind)
            if old is not None:
                old.close()
            participant.published[kind] = track
            fresh = True
        answer = await participant.finish_answer()
        participant.send(Description("answer", "pub", answer))
        if fresh:
            self._announce(participant)
        self.reconcile()

    def _announce(self, participant: Participant) -> None:
        state = ParticipantState(
            participant.id,
            sorted(k.value for k in participant.muted),
            sorted(k.value for k in participant.published),
        )
        for other in self.participants.values():
            other.send(state)

    # -- policy ----------------------------------------------------------------------

    def set_policy(self, policy: ClassPolicy) -> None:
        if policy == self.policy:
            return
        self.policy = policy
        message = PolicyChanged(policy.to_wire())
        for participant in self.participants.values():
            participant.send(message)
        self.reconcile()

    def _on_speaking(self, track: PublishedTrack) -> None:
        owner = self.participants.get(ParticipantId(track.owner))
        if owner is None:
            return
        message = Speaking(owner.id, track.speaking)
        for participant in self.participants.values():
            participant.send(message)
        for slot in tuple(track.downtracks):
            subscriber = self.participants.get(ParticipantId(slot.subscriber))
            if subscriber is not None:
                slot.set_wanted(self._wanted(owner, track, subscriber))

    def on_layer(self, participant: Participant, layer: Layer) -> None:
        """A subscriber's link changed layer: tell them, and forward accordingly."""
        metrics.LAYER_CHANGES.labels(layer.name.lower()).inc()
        est = participant.link.estimate if isinstance(participant.link, Link) else None
        log.info(
            "subscriber layer: %s",
            layer.value,
            extra={"participant": participant.id, "classroom": self.classroom},
        )
        participant.send(
            Quality(
                layer.value,
                None if est is None else round(est.loss, 3),
                None if est is None or est.rtt is None else round(est.rtt, 3),
            )
        )
        self.reconcile()

    def check_links(self, now: float) -> None:
        for participant in tuple(self.participants.values()):
            if isinstance(participant.link, Link):
                participant.link.tick(now)

    def check_speech(self, now: float) -> None:
        for participant in tuple(self.participants.values()):
            track = participant.published.get(Kind.AUDIO)
            if track is not None:
                track.check_speaking(now)

    def _bound(self, owner: Participant, track: PublishedTrack, sub: Participant) -> bool:
        if owner is sub:
            return False
        if track.kind is Kind.AUDIO:
            return True  # audio slots stay: voices come and go far faster than renegotiation
        return forwards(self.policy, owner.member, Kind.VIDEO, sub.member, speaking=False)

    def _wanted(self, owner: Participant, track: PublishedTrack, sub: Participant) -> bool:
        if track.kind in owner.muted:
            return False
        if track.kind is Kind.VIDEO and (sub.audio_only or layer_of(sub) is Layer.AUDIO):
            return False
        return forwards(self.policy, owner.member, track.kind, sub.member, speaking=track.speaking)

    def reconcile(self) -> None:
        """Binds every subscriber's slots to the tracks it should carry and sets whether
        each forwards now; renegotiates subscribers that need new slots; tells publishers
        to pause video nobody receives."""
        tracks = [
            (owner, track)
            for owner in self.participants.values()
            for track in owner.published.values()
        ]
        for sub in self.participants.values():
            changed = False
            keep = set()
            for owner, track in tracks:
                if not self._bound(owner, track, sub):
                    continue
                slot = sub.slot_for(track)
                if slot is None:
                    slot = next(
                        (s for s in sub.slots if s.source is None and s.kind is track.kind), None
                    ) or sub.add_slot(track.kind, self.config.video_history)
                    slot.bind(track)
                    changed = True
                keep.add(slot)
                slot.set_wanted(self._wanted(owner, track, sub))
            for slot in sub.slots:
                if slot not in keep and slot.source is not None:
                    slot.unbind()
                    changed = True
            if sub.offer_needed:
                self._negotiate(sub)
            elif changed and sub.sub is not None and not sub.negotiating:
                sub.send(Tracks(self._tracks_of(sub)))
        for owner, track in tracks:
            viewers = [
                self.participants.get(ParticipantId(slot.subscriber))
                for slot in track.downtracks
                if slot.wanted
            ]
            # Without simulcast the publisher's one stream is what every viewer gets:
            # lower it only when every viewer is weak, never at a strong viewer's cost.
            weak = bool(viewers) and all(
                v is not None and layer_of(v) is Layer.LOW for v in viewers
            )
            if track.kind is Kind.VIDEO:
                track.set_cap(self.config.low_video_bitrate if weak else None)
            paused = not any(slot.wanted for slot in track.downtracks)
            if owner.paused.get(track.kind) != paused and track.kind is Kind.VIDEO:
                owner.paused[track.kind] = paused
                owner.send(Pause(track.kind.value, paused))
        metrics.SLOTS.labels("forwarding").set(
            sum(s.wanted for p in self.participants.values() for s in p.slots)
        )
        for layer in Layer:
            metrics.SUBSCRIBERS.labels(layer.name.lower()).set(
                sum(layer_of(p) is layer for p in self.participants.values())
            )

    def _tracks_of(self, sub: Participant) -> dict[str, dict[str, Any]]:
        tracks: dict[str, dict[str, Any]] = {}
        for mid, slot in sub.slot_mids().items():
            owner = (
                None
                if slot.source is None
                else self.participants.get(ParticipantId(slot.source.owner))
            )
            tracks[mid] = {
                "kind": slot.kind.value,
                "participant": None if owner is None else owner.id,
                "userId": None if owner is None else owner.member.user_id,
            }
        return tracks

    # -- subscribing-connection negotiation -------------------------------------------

    def _negotiate(self, sub: Participant) -> None:
        if not sub.negotiating:
            sub.negotiating = True
            self._spawn(self._negotiate_loop(sub), f"negotiate:{sub.id}")

    async def _negotiate_loop(self, sub: Participant) -> None:
        try:
            while sub.offer_needed and not sub.closed:
                sub.offer_needed = False
                sdp = await sub.offer_subscribe()
                sub.send(Tracks(self._tracks_of(sub)))
                sub.send(Description("offer", "sub", sdp))
                try:
                    async with asyncio.timeout(self.config.negotiation_timeout):
                        await sub.answered.wait()
                except TimeoutError:
                    log.warning("subscribe offer not answered", extra={"participant": sub.id})
                    return
        except SfuError:
            log.exception("subscribe negotiation failed", extra={"participant": sub.id})
        finally:
            sub.negotiating = False
        # Slots bound while the offer was out (reconcile sends no Tracks then) would leave
        # the client with media it cannot attribute: send the mapping as it is now.
        if not sub.closed and sub.sub is not None:
            sub.send(Tracks(self._tracks_of(sub)))

    async def close(self) -> None:
        for participant in tuple(self.participants.values()):
            await self.leave(participant)
