"""The bus port itself: frame codec, delivery, sequence gaps, node liveness, control calls.

Runs on every bus implementation (the ``cluster`` fixture).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from collab.busframes import Frame, Kind, decode_frame
from collab.errors import ProtocolError
from collab.ports import Bus, BusListener, ControlCall, ControlKind, DocumentName, NodeId

from .buses import NODE_TIMEOUT, Cluster
from .peers import eventually

NAME = DocumentName("c1/board")
# How long a frame may take to arrive: a bound for a stuck test, not a speed claim (a
# loaded CI machine once took over 3 s for one through Redis).
DELIVERY = 10.0


@given(
    kind=st.sampled_from(list(Kind)),
    node=st.text(min_size=1, max_size=20),
    seq=st.integers(0, 2**53 - 1),
    target=st.text(max_size=20),
    arg=st.integers(0, 2**53 - 1),
    payload=st.binary(max_size=64),
    extra=st.binary(max_size=16),
)
def test_frames_round_trip(
    kind: Kind, node: str, seq: int, target: str, arg: int, payload: bytes, extra: bytes
) -> None:
    frame = Frame(kind, node, seq, target, arg, payload, extra)
    assert decode_frame(bytes(frame)) == frame


@given(data=st.binary(max_size=40))
def test_any_bytes_decode_or_raise_protocol_error(data: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        decode_frame(data)


def test_bad_frames_name_their_fault() -> None:
    good = bytes(Frame(Kind.UPDATE, "n1", 1, payload=b"u"))
    with pytest.raises(ProtocolError, match="bus frame version 9"):
        decode_frame(b"\x09" + good[1:])
    with pytest.raises(ProtocolError, match="unknown bus frame kind 42"):
        decode_frame(b"\x01\x2a" + good[2:])
    with pytest.raises(ProtocolError, match="trailing bytes"):
        decode_frame(good + b"\x00")
    with pytest.raises(ProtocolError, match="node id"):
        decode_frame(bytes(Frame(Kind.UPDATE, "x" * 65)))


class Recorder(BusListener):
    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []
        self.changed = asyncio.Event()

    def _add(self, *event: Any) -> None:
        self.events.append(event)
        self.changed.set()

    def on_bus_update(self, node: NodeId, seq: int, update: bytes, durable: bool) -> None:
        self._add("update", node, seq, update)

    def on_bus_awareness(self, node: NodeId, payload: bytes) -> None:
        self._add("awareness", node, payload)

    def on_bus_state(self, node: NodeId, state_vector: bytes, digest: bytes, flags: int) -> None:
        self._add("state", node, state_vector, digest, flags)

    def on_bus_saved(self, node: NodeId, seq: int) -> None:
        self._add("saved", node, seq)

    def on_bus_lost(self) -> None:
        self._add("lost")

    def on_node_gone(self, node: NodeId) -> None:
        self._add("gone", node)

    def updates(self) -> list[tuple[Any, ...]]:
        return [e for e in self.events if e[0] == "update"]

    def kinds(self) -> list[str]:
        return [e[0] for e in self.events]


async def running(bus: Bus, stack: contextlib.AsyncExitStack) -> Bus:
    task = asyncio.create_task(bus.run())

    async def stop() -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    stack.push_async_callback(stop)
    await eventually(lambda: bus.connected, deadline=5)
    return bus


@pytest.fixture
async def stack() -> AsyncIterator[contextlib.AsyncExitStack]:
    async with contextlib.AsyncExitStack() as s:
        yield s


@pytest.mark.anyio
async def test_frames_reach_other_nodes_never_their_sender(
    cluster: Cluster, stack: contextlib.AsyncExitStack
) -> None:
    a, b, c = [await running(cluster.node(), stack) for _ in range(3)]
    got = {n: Recorder() for n in "abc"}
    sub_a = a.subscribe(NAME, got["a"])
    sub_b = b.subscribe(NAME, got["b"])
    sub_c = c.subscribe(NAME, got["c"])
    other = Recorder()
    c.subscribe(DocumentName("c2/board"), other)
    for sub in (sub_a, sub_b, sub_c):
        await sub.ready()
    assert sub_a.publish(b"u1") == 1
    sub_a.send_diff(c.node_id, b"d1", durable=False)
    # Only the data frames: a loaded machine may also show a node briefly gone and back.
    await eventually(lambda: len(got["c"].updates()) == 2, deadline=DELIVERY)
    await eventually(lambda: len(got["b"].updates()) == 1, deadline=DELIVERY)
    assert got["b"].updates() == [("update", a.node_id, 1, b"u1")]
    assert got["c"].updates() == [("update", a.node_id, 1, b"u1"), ("update", a.node_id, 2, b"d1")]
    assert got["a"].updates() == []
    assert other.updates() == []
    sub_b.close()
    sub_b.close()
    sub_a.publish(b"u2")
    await eventually(lambda: len(got["c"].updates()) == 3, deadline=DELIVERY)
    assert len(got["b"].updates()) == 1


@pytest.mark.anyio
async def test_a_lost_frame_shows_as_a_gap(
    cluster: Cluster, stack: contextlib.AsyncExitStack
) -> None:
    a, b = [await running(cluster.node(), stack) for _ in range(2)]
    got = Recorder()
    sub_a = a.subscribe(NAME, Recorder())
    await b.subscribe(NAME, got).ready()
    await sub_a.ready()
    sub_a.publish(b"u1")
    await eventually(lambda: len(got.events) == 1, deadline=DELIVERY)
    cluster.drop(lambda channel, frame, to: frame.seq == 2)
    sub_a.publish(b"u2")
    sub_a.publish(b"u3")
    await eventually(lambda: "lost" in got.kinds(), deadline=DELIVERY)
    assert [e[2] for e in got.events if e[0] == "update"] == [1, 3]


@pytest.mark.anyio
async def test_nodes_are_gone_on_goodbye_or_silence(
    cluster: Cluster, stack: contextlib.AsyncExitStack
) -> None:
    a = await running(cluster.node(), stack)
    got = Recorder()
    await a.subscribe(NAME, got).ready()
    b = cluster.node()
    b_task = asyncio.create_task(b.run())
    await eventually(lambda: b.connected, deadline=5)
    sub_b = b.subscribe(NAME, Recorder())
    await sub_b.ready()
    sub_b.publish(b"hello")
    await eventually(lambda: "update" in got.kinds(), deadline=DELIVERY)
    b_task.cancel()  # a graceful stop says goodbye
    with contextlib.suppress(asyncio.CancelledError):
        await b_task
    await eventually(lambda: ("gone", b.node_id) in got.events, deadline=NODE_TIMEOUT / 2 + 1)
    c = await running(cluster.node(), stack)
    sub_c = c.subscribe(NAME, Recorder())
    await sub_c.ready()
    sub_c.publish(b"hello")
    await eventually(lambda: any(e[0] == "update" and e[1] == c.node_id for e in got.events), 3)
    cluster.partition(c)  # silent from now on, like a killed process
    await eventually(lambda: ("gone", c.node_id) in got.events, deadline=NODE_TIMEOUT * 6)


@pytest.mark.anyio
async def test_control_calls_reach_every_node_including_the_sender(
    cluster: Cluster, stack: contextlib.AsyncExitStack
) -> None:
    buses = [await running(cluster.node(), stack) for _ in range(2)]
    calls: list[list[ControlCall]] = [[], []]
    for bus, seen in zip(buses, calls, strict=True):
        bus.on_control(seen.append)
    await asyncio.sleep(0.2)  # the Redis consumer groups read from "now"
    call = ControlCall(ControlKind.END_CLASSROOM, classroom="c1", reason="archived")
    await buses[0].publish_control(call)
    await eventually(lambda: calls == [[call], [call]], deadline=DELIVERY)


@pytest.mark.anyio
async def test_a_question_gathers_every_nodes_reply_and_names_the_silent_ones(
    cluster: Cluster, stack: contextlib.AsyncExitStack
) -> None:
    a, b, c = [await running(cluster.node(), stack) for _ in range(3)]

    def replier(bus: Bus) -> Callable[[bytes], bytes]:
        return lambda q: q + b" from " + bus.node_id.encode()

    for bus in (a, b, c):
        bus.on_ask(replier(bus))
    # Each node must have heard the others before it expects their replies.
    await eventually(lambda: a.peers == 2, deadline=5)
    answers = await a.ask(b"rooms?", wait=5)
    assert answers.missing == ()
    assert answers.replies == {n.node_id: b"rooms? from " + n.node_id.encode() for n in (a, b, c)}
    # A node that cannot answer (its handler fails) and one cut off: both named missing,
    # once the deadline passes; the rest still answer.
    b.on_ask(lambda q: 1 / 0)  # type: ignore[arg-type,return-value]
    await eventually(lambda: a.peers == 2, deadline=5)
    cluster.partition(c)  # a still counts it alive: heard from less than a timeout ago
    answers = await a.ask(b"again", wait=NODE_TIMEOUT / 4)
    assert set(answers.replies) == {a.node_id}
    assert set(answers.missing) == {b.node_id, c.node_id}
    with pytest.raises(ValueError, match="a question is at most 65536 bytes"):
        await a.ask(b"x" * 65537, wait=1)


@pytest.mark.anyio
async def test_a_single_node_answers_itself_at_once(
    cluster: Cluster, stack: contextlib.AsyncExitStack
) -> None:
    a = await running(cluster.node(), stack)
    a.on_ask(lambda q: b"alone")
    answers = await asyncio.wait_for(a.ask(b"?", wait=30), 5)
    assert answers.replies == {a.node_id: b"alone"}
    assert answers.missing == ()


def test_an_in_process_node_alone_on_a_channel_encodes_nothing_for_it() -> None:
    from collab.memory import LocalBus

    alone = LocalBus()
    encoded: list[object] = []
    transmitted: list[str] = []
    alone._m.frames_out = encoded.append  # type: ignore[method-assign,assignment]
    alone._transmit = lambda channel, frame: transmitted.append(channel)  # type: ignore[method-assign]
    alone.send("doc:x", Frame(Kind.UPDATE, str(alone.node_id), 1, payload=b"u"))
    assert (encoded, transmitted) == ([], [])  # the embedded default: nobody to hear it
    other = alone.sibling()
    other._join("doc:x")
    alone.send("doc:x", Frame(Kind.UPDATE, str(alone.node_id), 2, payload=b"u"))
    assert (encoded, transmitted) == ([Kind.UPDATE], ["doc:x"])
