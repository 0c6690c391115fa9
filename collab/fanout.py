"""The node side of a bus, whatever carries its frames: subscriptions, per-document
sequence numbers and gap detection, heartbeats and the liveness of the other nodes.

A transport (the in-process :class:`~collab.memory.LocalBus`, the Redis adapter) supplies
three primitives, :meth:`FramedBus._transmit`, :meth:`_join` and :meth:`_leave`, and
feeds what arrives to :meth:`FramedBus.receive`. Everything that decides whether a frame
was lost, or a node is gone, lives here once, so every transport behaves the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import secrets
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Final

from . import metrics
from .busframes import Frame, Kind, decode_frame
from .errors import BusUnavailable, ProtocolError
from .ports import (
    Answers,
    AskHandler,
    BusListener,
    ControlCall,
    ControlHandler,
    DocumentName,
    NodeId,
)

log = logging.getLogger("inkroom.collab.bus")

NODES_CHANNEL: Final = "nodes"
DOC_PREFIX: Final = "doc:"
STATE_ASK: Final = 1
STATE_REPLY: Final = 2
# Nodes declared gone are remembered this long, to notice one that comes back.
_GONE_MEMORY: Final = 300.0
MAX_QUESTION: Final = 64 * 1024
# Questions waiting for replies at once: each holds its replies in memory until answered.
MAX_PENDING_ASKS: Final = 32


@dataclass
class _Pending:
    expected: set[NodeId]
    replies: dict[NodeId, bytes] = field(default_factory=dict)
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def add(self, node: NodeId, reply: bytes) -> None:
        self.replies[node] = reply
        if self.expected <= self.replies.keys():
            self.done.set()


def new_node_id() -> NodeId:
    return NodeId(secrets.token_hex(6))


class FramedBus(ABC):
    """Implements :class:`~collab.ports.Bus` on top of a publish/subscribe transport.

    One subscription per document per node (one room). Not thread-safe: lives on the loop.
    """

    def __init__(
        self,
        node_id: NodeId | None = None,
        *,
        heartbeat_interval: float = 1.0,
        node_timeout: float = 3.0,
    ) -> None:
        self.node_id: NodeId = node_id or new_node_id()
        self.heartbeat_interval = heartbeat_interval
        self.node_timeout = node_timeout
        self._subs: dict[DocumentName, BusSubscriptionImpl] = {}
        # Last sequence number seen per (document, sender).
        self._seen: dict[tuple[DocumentName, NodeId], int] = {}
        # Nodes heard from recently (monotonic time of the last frame), and those declared
        # gone (when), to notice one that comes back after a partition.
        self._heard: dict[NodeId, float] = {}
        self._gone: dict[NodeId, float] = {}
        self._control: ControlHandler | None = None
        self._ask_handler: AskHandler | None = None
        self._asks: dict[int, _Pending] = {}
        self._ask_ids = itertools.count(1)
        self._m = metrics.BusMetrics(self.node_id)
        # Tests cut a node off with :meth:`partition`: frames in and out are lost.
        self.partitioned = False
        # When this node last heard its own heartbeat come back (a live subscription).
        self.echo_at = time.monotonic()

    # -- transport primitives ----------------------------------------------------------

    @abstractmethod
    def _transmit(self, channel: str, frame: bytes) -> None:
        """Publishes a frame; never blocks, never raises (drops when disconnected)."""

    @abstractmethod
    def _join(self, channel: str) -> None: ...

    @abstractmethod
    def _leave(self, channel: str) -> None: ...

    async def _joined(self, channel: str) -> None:
        """Returns once ``channel`` is subscribed at the broker (or the bus is down)."""
        return None

    @property
    def connected(self) -> bool:
        return not self.partitioned

    def partition(self) -> None:
        """Cuts this node off the others (tests): like a lost connection to the broker."""
        self.partitioned = True
        self._m.connected.set(0)

    def heal(self) -> None:
        """Ends :meth:`partition`: every room catches up."""
        self.partitioned = False
        self._m.connected.set(1)
        self._m.reconnects.inc()
        self.resync()

    @property
    def peers(self) -> int:
        return len(self._heard)

    # -- the port ------------------------------------------------------------------------

    def subscribe(self, name: DocumentName, listener: BusListener) -> BusSubscriptionImpl:
        """Joins ``name``'s channel.

        Raises:
            ValueError: this node already has a subscription for ``name``.
        """
        if name in self._subs:
            raise ValueError(f"node {self.node_id} already subscribes to {name!r}")
        sub = BusSubscriptionImpl(self, name, listener)
        self._subs[name] = sub
        self._join(DOC_PREFIX + name)
        return sub

    def on_control(self, handler: ControlHandler) -> None:
        self._control = handler

    def _deliver_control(self, call: ControlCall) -> None:
        if self._control is None:
            return
        try:
            self._control(call)
        except Exception:
            log.exception("control handler failed", extra={"call": call.kind.value})

    def on_ask(self, handler: AskHandler) -> None:
        self._ask_handler = handler

    def _reply(self, question: bytes) -> bytes | None:
        if self._ask_handler is None:
            return None
        try:
            return self._ask_handler(question)
        except Exception:
            log.exception("ask handler failed")
            return None

    async def ask(self, question: bytes, *, wait: float) -> Answers:
        if len(question) > MAX_QUESTION:
            raise ValueError(f"a question is at most {MAX_QUESTION} bytes")
        if len(self._asks) >= MAX_PENDING_ASKS:
            raise BusUnavailable("too many questions waiting for replies")
        own = self._reply(question)
        pending = _Pending(set(self._heard))
        if own is not None:
            pending.replies[self.node_id] = own
        if pending.expected and self.connected:
            number = next(self._ask_ids)
            self._asks[number] = pending
            try:
                self.send(
                    NODES_CHANNEL, Frame(Kind.ASK, self.node_id, arg=number, payload=question)
                )
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        await pending.done.wait()
            finally:
                del self._asks[number]
        missing = tuple(sorted(pending.expected - pending.replies.keys()))
        return Answers(dict(pending.replies), missing)

    def _answer(self, node: NodeId, frame: Frame) -> None:
        if frame.kind is Kind.ASK:
            reply = self._reply(frame.payload)
            if reply is not None:
                answer = Frame(Kind.ANSWER, self.node_id, target=node, arg=frame.arg, payload=reply)
                self.send(NODES_CHANNEL, answer)
        elif frame.target == self.node_id:
            pending = self._asks.get(frame.arg)
            if pending is not None:
                pending.add(node, frame.payload)

    def _drop(self, sub: BusSubscriptionImpl) -> None:
        if self._subs.get(sub.name) is sub:
            del self._subs[sub.name]
            self._leave(DOC_PREFIX + sub.name)
            for key in [k for k in self._seen if k[0] == sub.name]:
                del self._seen[key]

    def send(self, channel: str, frame: Frame) -> None:
        if not self._heard_by_others(channel):
            return  # nobody to hear it: not even encoded
        self._m.frames_out(frame.kind)
        self._transmit(channel, bytes(frame))

    def _heard_by_others(self, channel: str) -> bool:
        """Whether another node may receive ``channel``; a transport that cannot know
        says ``True``."""
        return True

    # -- incoming ------------------------------------------------------------------------

    def receive(self, channel: str, data: bytes) -> None:
        """Handles one frame from the transport; never raises."""
        try:
            frame = decode_frame(data)
        except ProtocolError as exc:
            self._m.bad_frame()
            log.warning("bad bus frame dropped: %s", exc, extra={"channel": channel[:80]})
            return
        if frame.node == self.node_id:
            if frame.kind is Kind.HEARTBEAT:
                self.echo_at = time.monotonic()
            return
        node = NodeId(frame.node)
        self._m.frames_in(frame.kind)
        self._alive(node)
        if channel == NODES_CHANNEL:
            if frame.kind is Kind.BYE:
                self._node_gone(node, "left")
            elif frame.kind in (Kind.ASK, Kind.ANSWER):
                self._answer(node, frame)
            return
        if not channel.startswith(DOC_PREFIX):
            return
        sub = self._subs.get(DocumentName(channel[len(DOC_PREFIX) :]))
        if sub is None:
            return
        gap = self._sequence(sub.name, node, frame.seq)
        if frame.target and frame.target != self.node_id:
            if gap:
                sub.lost()
            return
        try:
            _dispatch(sub.listener, node, frame)
        except Exception:
            log.exception("bus listener failed", extra={"document": sub.name})
        if gap:
            sub.lost()

    def _sequence(self, name: DocumentName, node: NodeId, seq: int) -> bool:
        """Records ``seq``; whether frames from ``node`` on ``name`` were lost before it."""
        key = (name, node)
        last = self._seen.get(key)
        self._seen[key] = seq
        # A first frame sets the baseline (the catch-up a room runs on joining covers what
        # came before); seq 1 is a sender that (re)subscribed.
        if last is None or seq == last + 1 or seq == 1:
            return False
        self._m.gap()
        log.info(
            "bus gap",
            extra={"document": name, "from_node": node, "expected": last + 1, "got": seq},
        )
        return True

    # -- liveness ------------------------------------------------------------------------

    def _alive(self, node: NodeId) -> None:
        if node not in self._heard:
            self._m.nodes(len(self._heard) + 1)
            if self._gone.pop(node, None) is not None:
                # It was declared gone (a partition): its presence was dropped and it may
                # have missed ours. Both sides catch up.
                log.info("node is back", extra={"peer": node})
                self.resync()
        self._heard[node] = time.monotonic()

    def _node_gone(self, node: NodeId, why: str) -> None:
        if self._heard.pop(node, None) is None:
            return
        self._gone[node] = time.monotonic()
        self._m.node_gone()
        self._m.nodes(len(self._heard))
        log.warning("node gone (%s)", why, extra={"peer": node})
        for key in [k for k in self._seen if k[1] == node]:
            del self._seen[key]
        for sub in list(self._subs.values()):
            try:
                sub.listener.on_node_gone(node)
            except Exception:
                log.exception("bus listener failed", extra={"document": sub.name})

    def check_liveness(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        for node, heard in list(self._heard.items()):
            if now - heard > self.node_timeout:
                self._node_gone(node, "silent")
        for node, when in list(self._gone.items()):
            if now - when > _GONE_MEMORY:
                del self._gone[node]

    def heartbeat(self) -> None:
        self.send(NODES_CHANNEL, Frame(Kind.HEARTBEAT, self.node_id))

    def goodbye(self) -> None:
        self.send(NODES_CHANNEL, Frame(Kind.BYE, self.node_id))

    def resync(self) -> None:
        """Frames may have been lost on every channel (a reconnect): every room catches up."""
        self._seen.clear()
        for sub in list(self._subs.values()):
            sub.lost()

    async def _beat_forever(self) -> None:
        while True:
            self.heartbeat()
            self.check_liveness()
            await asyncio.sleep(self.heartbeat_interval)


def _dispatch(listener: BusListener, node: NodeId, frame: Frame) -> None:
    kind = frame.kind
    if kind is Kind.UPDATE:
        listener.on_bus_update(node, frame.seq, frame.payload, False)
    elif kind is Kind.DIFF:
        listener.on_bus_update(node, frame.seq, frame.payload, frame.arg == 1)
    elif kind is Kind.AWARENESS:
        listener.on_bus_awareness(node, frame.payload)
    elif kind is Kind.STATE:
        listener.on_bus_state(node, frame.payload, frame.extra, frame.arg)
    elif kind is Kind.SAVED:
        listener.on_bus_saved(node, frame.arg)


class BusSubscriptionImpl:
    """A room's membership of its document's channel (:class:`~collab.ports.BusSubscription`)."""

    def __init__(self, bus: FramedBus, name: DocumentName, listener: BusListener) -> None:
        self._bus = bus
        self.name = name
        self.listener = listener
        self.channel = DOC_PREFIX + name
        self.seq = 0
        self.closed = False

    async def ready(self) -> None:
        await self._bus._joined(self.channel)

    def _send(
        self, kind: Kind, *, to: NodeId | None = None, arg: int = 0, payload: bytes = b""
    ) -> int:
        return self._send_extra(kind, to=to, arg=arg, payload=payload, extra=b"")

    def _send_extra(
        self, kind: Kind, *, to: NodeId | None, arg: int, payload: bytes, extra: bytes
    ) -> int:
        if self.closed:
            return 0
        # Every frame, addressed or not, takes the next number: every receiver of the
        # channel sees every frame, so a lost one shows as a gap wherever it was headed.
        self.seq += 1
        frame = Frame(kind, self._bus.node_id, self.seq, to or "", arg, payload, extra)
        self._bus.send(self.channel, frame)
        return self.seq

    def publish(self, update: bytes) -> int:
        return self._send(Kind.UPDATE, payload=update)

    def publish_awareness(self, payload: bytes, *, to: NodeId | None = None) -> None:
        self._send(Kind.AWARENESS, to=to, payload=payload)

    def publish_state(
        self, state_vector: bytes, digest: bytes, *, flags: int, to: NodeId | None = None
    ) -> None:
        self._bus._m.state_sent(flags)
        self._send_extra(Kind.STATE, to=to, arg=flags, payload=state_vector, extra=digest)

    def send_diff(self, to: NodeId, update: bytes, *, durable: bool) -> None:
        self._bus._m.diff_sent()
        self._send(Kind.DIFF, to=to, arg=int(durable), payload=update)

    def publish_saved(self, seq: int) -> None:
        self._send(Kind.SAVED, arg=seq)

    def lost(self) -> None:
        try:
            self.listener.on_bus_lost()
        except Exception:
            log.exception("bus listener failed", extra={"document": self.name})

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._bus._drop(self)
