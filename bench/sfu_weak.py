"""SFU on weak links: how fast a lossy subscriber degrades and recovers, what it still
receives, and what "low video" does to the publisher's bitrate.

Usage (repo root, venv active; about 2 minutes)::

    python bench/sfu_weak.py [--json bench/.work/sfu_weak.json]

One process, real aiortc peers on 127.0.0.1: a tutor publishes 320x240 VP8 at 30 fps and
an Opus tone; students subscribe. Loss is made on the SFU's side of one student's link
(a share of that student's first transmissions dropped, as tests/sfu/test_weak_link.py
does), so the SFU judges that student from its own receiver reports. Phases:

1. ``alone``: one student; 8 % loss, then 35 %, then none. Times to "low video", to
   "audio only", and back to "full video"; audio and video packets that reached the
   student while audio only; the publisher's bitrate clean and while capped.
2. ``mixed``: the weak student plus two clean ones; 8 % loss on the weak one: it goes to
   low video, but the publisher is not capped (the clean viewers keep full video).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

# Run as a script from bench/, where bench/sfu.py would shadow the sfu package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sfu.call import Call, SfuConfig
from sfu.client import CallClient
from sfu.forwarder import Downtrack, PublishedTrack
from sfu.hooks import use_loopback_only
from sfu.policy import Kind, Member, Role
from sfu.service import Session, Sfu
from sfu.signaling import encode
from sfu.synthetic import MovingPicture, Tone


@contextlib.asynccontextmanager
async def joined(sfu: Sfu, user: str, role: Role) -> AsyncIterator[CallClient]:
    inbox: asyncio.Queue[str] = asyncio.Queue()
    holder: list[Session] = []

    async def send(text: str) -> None:
        await holder[0].receive(text)

    async def pump(client: CallClient) -> None:
        while True:
            await client.deliver(await inbox.get())

    async with CallClient(send) as client, asyncio.TaskGroup() as tg:
        first = client.expect("joined")
        holder.append(
            await sfu.join("c", Member(user, role), user, lambda m: inbox.put_nowait(encode(m)))
        )
        task = tg.create_task(pump(client))
        async with asyncio.timeout(10):
            await first
        try:
            yield client
        finally:
            task.cancel()
            await holder[0].leave()


async def until(predicate: Callable[[], bool], deadline: float) -> float:
    start = time.monotonic()
    async with asyncio.timeout(deadline):
        while not predicate():  # noqa: ASYNC110 - media counters have no event
            await asyncio.sleep(0.05)
    return round(time.monotonic() - start, 1)


def lossy(slots: list[Downtrack]) -> list[int]:
    """Drops ``percent[0]`` % of the slots' first transmissions; returns that knob."""
    percent = [0]
    for slot in slots:
        send = slot.egress.send

        async def drop(packet: Any, send: Any = send) -> None:
            if packet.sequence_number % 100 < percent[0]:
                return
            await send(packet)

        slot.egress.send = drop  # type: ignore[method-assign]
    return percent


async def kbps(track: PublishedTrack, seconds: float = 4.0) -> int:
    """The publisher's arriving video bitrate, averaged over ``seconds``."""
    samples = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        await asyncio.sleep(1.0)
        samples.append(track.rate)
    return round(sum(samples) / len(samples) / 1000)


def parts(call: Call, user: str) -> list[Downtrack]:
    return next(p for p in call.participants.values() if p.member.user_id == user).slots


async def alone(sfu: Sfu) -> dict[str, Any]:
    out: dict[str, Any] = {}
    async with joined(sfu, "tutor", Role.TUTOR) as tutor, joined(sfu, "ann", Role.STUDENT) as ann:
        await tutor.publish(Tone(), MovingPicture(320, 240, 30))
        assert tutor.joined is not None
        pid = tutor.joined["participant"]
        await until(lambda: any(r.frames > 30 for r in ann.slots_of(pid, "video")), 20)
        call = sfu.calls["c"]
        track = next(p for p in call.participants.values() if p.id == pid).published[Kind.VIDEO]
        out["publisher_kbps_clean"] = await kbps(track, 6)
        loss = lossy(parts(call, "ann"))
        loss[0] = 8
        out["s_to_low_video_at_8pct"] = await until(lambda: ann.quality == "low video", 30)
        await asyncio.sleep(4)
        out["publisher_kbps_capped"] = await kbps(track)
        loss[0] = 35
        out["s_to_audio_only_at_35pct"] = await until(lambda: ann.quality == "audio only", 30)
        await asyncio.sleep(1)
        before = await ann.packets_received()
        frames = sum(r.frames for r in ann.slots_of(pid, "audio"))
        await asyncio.sleep(5)
        after = await ann.packets_received()
        out["audio_only_audio_packets_per_s"] = round((after["audio"] - before["audio"]) / 5, 1)
        out["audio_only_audio_frames_decoded_per_s"] = round(
            (sum(r.frames for r in ann.slots_of(pid, "audio")) - frames) / 5, 1
        )
        out["audio_only_video_packets_per_s"] = round((after["video"] - before["video"]) / 5, 1)
        loss[0] = 0
        out["s_back_to_low_video"] = await until(lambda: ann.quality == "low video", 60)
        out["s_then_to_full_video"] = await until(lambda: ann.quality == "full video", 60)
        await asyncio.sleep(4)
        out["publisher_kbps_after"] = await kbps(track)
        out["states"] = [m["state"] for m in ann.messages if m["type"] == "quality"]
    return out


async def mixed(sfu: Sfu) -> dict[str, Any]:
    out: dict[str, Any] = {}
    async with (
        joined(sfu, "tutor", Role.TUTOR) as tutor,
        joined(sfu, "ann", Role.STUDENT) as ann,
        joined(sfu, "bob", Role.STUDENT) as bob,
        joined(sfu, "cid", Role.STUDENT) as cid,
    ):
        await tutor.publish(Tone(), MovingPicture(320, 240, 30))
        assert tutor.joined is not None
        pid = tutor.joined["participant"]
        await until(
            lambda: all(
                any(r.frames > 30 for r in s.slots_of(pid, "video")) for s in (ann, bob, cid)
            ),
            20,
        )
        call = sfu.calls["c"]
        track = next(p for p in call.participants.values() if p.id == pid).published[Kind.VIDEO]
        out["publisher_kbps_clean"] = await kbps(track, 6)
        loss = lossy(parts(call, "ann"))
        loss[0] = 8
        out["s_to_low_video_at_8pct"] = await until(lambda: ann.quality == "low video", 30)
        await asyncio.sleep(4)
        out["publisher_kbps_one_weak_viewer"] = await kbps(track)
        out["publisher_capped"] = track.cap is not None
        out["clean_viewers_states"] = [bob.quality, cid.quality]
    return out


async def main() -> dict[str, Any]:
    use_loopback_only()
    results: dict[str, Any] = {}
    async with Sfu(SfuConfig()) as sfu:
        results["alone"] = await alone(sfu)
    async with Sfu(SfuConfig()) as sfu:
        results["mixed"] = await mixed(sfu)
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--json")
    args = parser.parse_args()
    found = asyncio.run(main())
    print(json.dumps(found, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(found, indent=2))
