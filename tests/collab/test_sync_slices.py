"""A large first sync leaves in slices, with other frames between them, within the bounds."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from contextlib import AsyncExitStack
from typing import Any

import pytest
from pycrdt import Doc, Map

from collab.client import SLICES_PER_TURN_BYTES, SYNC_SLICE_BYTES, Client
from collab.errors import SlowConsumer
from collab.fullstate import FullState, SyncReply
from collab.limits import Limits
from collab.memory import LocalBus, MemoryStore
from collab.ports import Peer
from collab.protocol import AwarenessMessage, SyncStep2, SyncUpdate, decode
from collab.registry import Registry

from .peers import ScriptedPeer, wait_for
from .test_slices import board

pytestmark = pytest.mark.anyio

TUTOR = Peer("tutor-1", "Ada", "tutor")
STUDENT = Peer("student-1", "Bo", "student")


def _rebuilt(frames: list[bytes]) -> Any:
    """The board that the sync frames among ``frames`` build, applied in order."""
    rebuilt: Doc[Any] = Doc()
    for f in frames:
        if f[0] == 0:
            message = decode(f)
            assert isinstance(message, SyncUpdate | SyncStep2)
            rebuilt.apply_update(message.update)
    return rebuilt.get("shapes", type=Map).to_py()


class Recorder:
    """A transport that records frames and lets a test act after each one."""

    def __init__(self, after_send: Any = None) -> None:
        self.frames: list[bytes] = []
        self.after_send = after_send

    async def receive(self) -> bytes:
        raise AssertionError("not read")

    async def send(self, data: bytes) -> None:
        self.frames.append(data)
        if self.after_send is not None:
            self.after_send(len(self.frames))

    def send_nowait(self, data: bytes) -> bool:
        return False

    def send_many_nowait(self, data: Sequence[bytes]) -> bool:
        return False

    async def drained(self) -> None:
        pass  # never paused; it only takes frames one by one through send()

    def listen(self, on_message: Any, on_end: Any) -> bool:
        return False  # read through receive

    async def close(self, code: int, reason: str = "") -> None:
        pass


async def test_reply_leaves_as_updates_then_a_last_sync_step2_with_frames_between() -> None:
    doc = board(1500)
    update = doc.get_update()
    assert len(update) > 4 * SYNC_SLICE_BYTES
    client = Client(TUTOR, outbox_limit=1024, outbox_bytes=1 << 20)

    done = asyncio.Event()

    def during(n: int) -> None:
        if n == 2:  # the room broadcasts while the reply is in flight
            assert client.send(b"\x01live")
            assert client.sync_reply_pending
        if connection.frames[-1][:2] == b"\x00\x01":
            done.set()

    connection = Recorder(during)
    assert client.send(bytes(SyncStep2(update)), sync_reply=True)
    pump = asyncio.create_task(client.pump(connection))
    await wait_for(done.wait(), 10)
    client.finish()
    await wait_for(pump, 10)
    assert not client.sync_reply_pending
    kinds = [type(decode(f)).__name__ if f[0] == 0 else f for f in connection.frames]
    assert kinds[-1] == "SyncStep2"
    assert set(kinds[:-1]) - {"SyncUpdate"} == {b"\x01live"}
    assert kinds.index(b"\x01live") < 4  # right after the slice it was queued behind
    assert max(len(f) for f in connection.frames) <= SYNC_SLICE_BYTES + 16
    assert _rebuilt(connection.frames) == doc.get("shapes", type=Map).to_py()


async def test_frames_queued_behind_a_reply_in_flight_keep_the_byte_bound() -> None:
    """The reply in flight no longer counts; what queues behind it is bounded as ever."""
    update = board(1500).get_update()
    client = Client(TUTOR, outbox_limit=1024, outbox_bytes=4096)
    outcomes: list[bool] = []

    def during(n: int) -> None:
        if n == 1:
            outcomes.append(client.send(b"\x01" + bytes(3000)))
            outcomes.append(client.send(b"\x01" + bytes(3000)))  # 6 KB queued > 4 KB bound

    assert client.send(bytes(SyncStep2(update)), sync_reply=True)
    pump = asyncio.create_task(client.pump(Recorder(during)))
    with pytest.raises(Exception, match="outbox full"):
        await wait_for(pump, 10)
    assert outcomes == [True, False]


async def test_a_late_joiner_gets_a_large_board_in_slices() -> None:
    async with AsyncExitStack() as stack:
        registry = await stack.enter_async_context(
            Registry(MemoryStore(), LocalBus(), limits=Limits())
        )
        tutor = await ScriptedPeer(registry, "c1/board", TUTOR).start(stack)
        source = board(1200)
        await tutor.edit(lambda d: d.apply_update(source.get_update()))
        student = await ScriptedPeer(registry, "c1/board", STUDENT).start(stack)
        expected = source.get("shapes", type=Map).to_py()
        assert student.doc.get("shapes", type=Map).to_py() == expected
        sync = [m for m in student.received if isinstance(m, SyncUpdate | SyncStep2)]
        assert len(sync) > 3
        assert isinstance(sync[-1], SyncStep2)
        assert not any(isinstance(m, AwarenessMessage) for m in sync)


async def test_a_client_failed_mid_reply_gets_no_more_slices() -> None:
    update = board(1500).get_update()
    client = Client(TUTOR, outbox_limit=1024, outbox_bytes=1 << 20)

    def during(n: int) -> None:
        if n == 2:
            client.fail(SlowConsumer("closed by the test"))

    connection = Recorder(during)
    assert client.send(bytes(SyncStep2(update)), sync_reply=True)
    with pytest.raises(SlowConsumer, match="closed by the test"):
        await wait_for(client.pump(connection), 10)
    assert len(connection.frames) == 2


class Batching(Recorder):
    """A transport that takes several frames per write, and is paused every other time
    until the client waits for it to drain."""

    def __init__(self, after_batch: Any = None) -> None:
        super().__init__()
        self.batches: list[list[bytes]] = []
        self.after_batch = after_batch
        self.paused = False
        self.drains = 0

    def send_many_nowait(self, data: Sequence[bytes]) -> bool:
        if self.paused:
            return False
        self.batches.append(list(data))
        self.frames.extend(data)
        self.paused = len(self.batches) % 2 == 0  # the next write finds it full
        if self.after_batch is not None:
            self.after_batch(len(self.batches))
        return True

    async def drained(self) -> None:
        await asyncio.sleep(0)
        self.drains += 1
        self.paused = False


async def test_shared_slices_leave_in_bounded_batches_with_frames_between() -> None:
    doc = board(3000)
    update = doc.get_update()
    shared = FullState(update, doc.get_state(), written_at=0, slice_bytes=SYNC_SLICE_BYTES)
    client = Client(STUDENT, outbox_limit=1024, outbox_bytes=1 << 20)

    def during(n: int) -> None:
        if n == 1:  # a live stroke while the first batch is out
            assert client.send(b"\x01live")

    connection = Batching(during)
    done = asyncio.Event()
    connection.after_send = lambda n: done.set()  # the last message goes through send()
    assert client.send_reply(SyncReply(shared, lambda: b"\x00\x00"))
    pump = asyncio.create_task(client.pump(connection))
    await wait_for(done.wait(), 10)
    client.finish()
    await wait_for(pump, 10)
    assert len(connection.batches) > 2
    assert max(len(b) for b in connection.batches) > 1  # several slices per write
    assert connection.drains > 0  # paused writes waited, then went on in batches
    for batch in connection.batches:
        assert sum(len(f) for f in batch) < SLICES_PER_TURN_BYTES + SYNC_SLICE_BYTES + 16
    live = connection.frames.index(b"\x01live")
    assert live == len(connection.batches[0])  # right after the batch it was queued behind
    assert type(decode(connection.frames[-1])).__name__ == "SyncStep2"
    assert _rebuilt(connection.frames) == doc.get("shapes", type=Map).to_py()


async def test_frames_queued_before_start_leave_in_one_write_without_a_writer_task() -> None:
    client = Client(STUDENT, outbox_limit=1024, outbox_bytes=1 << 20)
    queued = [b"\x00\x00\x01\x00", b"\x01presence"]  # what a join queues: SyncStep1, presence
    for frame in queued:
        assert client.send(frame)
    connection = Batching()
    client.start(connection, lambda outcome: None)
    assert connection.batches == [queued]  # written by start itself, in one write
    assert client.stop() is None  # no writer task was made
    assert client.outbox_depth == (0, 0)

    # A transport that cannot take them leaves them to a writer task, in order.
    late = Client(STUDENT, outbox_limit=1024, outbox_bytes=1 << 20)
    for frame in queued:
        assert late.send(frame)
    paused = Batching()
    paused.paused = True
    done = asyncio.Event()
    late.start(paused, lambda outcome: done.set())
    assert paused.batches == []
    late.finish()
    await wait_for(done.wait(), 10)
    assert paused.frames == queued
