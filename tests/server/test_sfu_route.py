"""``/sfu/{classroom}``: tokens, malformed messages, ICE servers, and policy from the
classroom document reaching the forwarder."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import websockets
from pycrdt import Map

from server.auth import Role, issue
from sfu.synthetic import MovingPicture, Tone
from tests.sfu.peers import until

from .callpeer import call_peer
from .live import live_server, settings_for
from .wspeer import WsPeer

pytestmark = pytest.mark.anyio
SECRET = "call-secret-" + "0123456789abcdef" * 4
TURN_SECRET = "turn-shared-secret"
NO_ICE_OFFER = (
    "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"
    "c=IN IP4 0.0.0.0\r\na=mid:0\r\na=sendonly\r\na=rtpmap:111 opus/48000/2\r\n"
)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    settings = settings_for(
        tmp_path,
        SECRET,
        stun_urls=["stun:127.0.0.1:3478"],
        turn_urls=["turn:127.0.0.1:3478?transport=udp", "turn:127.0.0.1:3478?transport=tcp"],
        turn_secret=TURN_SECRET,
        turn_ttl=600,
    )
    with live_server(settings) as url:
        yield url


def call_url(server: str, role: Role, user: str, classroom: str = "c1") -> str:
    token = issue(SECRET, classroom="c1", role=role, user_id=user, name=user.title())
    return f"{server}/sfu/{classroom}?token={token}"


async def closed_with(url: str) -> int | None:
    async with websockets.connect(url) as ws:
        with pytest.raises(websockets.ConnectionClosed) as info:
            await asyncio.wait_for(ws.recv(), 5)
    return info.value.rcvd.code if info.value.rcvd else None


async def test_bad_token_closes_4401_and_another_classroom_4403(server: str) -> None:
    assert await closed_with(f"{server}/sfu/c1?token=forged") == 4401
    assert await closed_with(f"{server}/sfu/c1") == 4401
    assert await closed_with(call_url(server, Role.STUDENT, "ann", classroom="c2")) == 4403


async def test_malformed_messages_get_error_replies_and_the_call_goes_on(server: str) -> None:
    async with websockets.connect(call_url(server, Role.STUDENT, "mallory")) as ws:
        for frame in ("not json", '{"type":"offer","sdp":"v=0"}', b"\x00binary"):
            await ws.send(frame)
            reply = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert reply["type"] == "error"
            assert reply["code"] == "bad-message"
        async with call_peer(call_url(server, Role.TUTOR, "tutor")) as tutor:
            await tutor.publish(Tone(), MovingPicture(160, 120, 30))
            await ws.send('{"type":"join"}')
            joined = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert joined["type"] == "joined"
            for frame in (
                "{",
                '{"type":"answer","pc":"sub","sdp":"v=0 garbage"}',
                json.dumps({"type": "offer", "sdp": NO_ICE_OFFER}),
                '{"type":"candidate","pc":"sub","candidate":"candidate:x"}',
                '{"type":"mute","kind":"audio"}',
                '{"type":"join"}',
            ):
                await ws.send(frame)
            errors: list[str] = []
            async with asyncio.timeout(5):
                while len(errors) < 6:
                    message = json.loads(await ws.recv())
                    if message["type"] == "error":
                        errors.append(message["code"])
            assert errors == [
                "bad-message",
                "negotiation-failed",
                "negotiation-failed",
                "bad-state",
                "bad-message",
                "bad-state",
            ]
            # The tutor's call was never disturbed, and a well-behaved student still joins.
            async with call_peer(call_url(server, Role.STUDENT, "ann")) as ann:
                pid = tutor.joined["participant"] if tutor.joined else ""

                await until(lambda: any(r.frames > 10 for r in ann.slots_of(pid, "video")), 10)
            assert tutor.errors == []


async def test_joined_carries_stun_and_time_limited_turn_credentials(server: str) -> None:
    async with call_peer(call_url(server, Role.STUDENT, "ann")) as ann:
        assert ann.joined is not None
        stun, turn = ann.joined["iceServers"]
    assert stun == {"urls": ["stun:127.0.0.1:3478"]}
    expiry, user = turn["username"].split(":")
    assert user == "ann"
    assert 590 <= int(expiry) - time.time() <= 610
    digest = hmac.new(TURN_SECRET.encode(), turn["username"].encode(), hashlib.sha1).digest()
    assert turn["credential"] == base64.b64encode(digest).decode()


async def test_a_tutor_mute_in_the_class_document_stops_the_student_audio_within_200_ms(
    server: str,
) -> None:
    token = issue(SECRET, classroom="c1", role=Role.TUTOR, user_id="tutor")
    async with (
        call_peer(call_url(server, Role.TUTOR, "tutor")) as tutor,
        call_peer(call_url(server, Role.STUDENT, "ann")) as ann,
        WsPeer(f"{server.replace('/sfu', '')}/ws/c1/class?token={token}") as class_doc,
    ):
        await ann.publish(Tone(amplitude=0.5))
        pid = ann.joined["participant"] if ann.joined else ""

        def hearing(n: int) -> Callable[[], bool]:
            return lambda: any(r.frames > n for r in tutor.slots_of(pid, "audio"))

        await until(hearing(25), 10)  # half a second of her voice
        muted_at = time.monotonic()
        await class_doc.edit(lambda d: d.get("state", type=Map).update({"callMuted": ["ann"]}))
        await asyncio.sleep(1.0)
        audio = tutor.slots_of(pid, "audio")[0]
        assert audio.last_at is not None
        assert audio.last_at - muted_at < 0.2, audio.last_at - muted_at
        assert tutor.policy["muted"] == ["ann"]

        # Unmuted: her voice comes back.
        frames = audio.frames
        await class_doc.edit(lambda d: d.get("state", type=Map).update({"callMuted": []}))
        await until(hearing(frames + 10), 5)

        # The call shows in /metrics.
        http = server.replace("ws://", "http://")
        body = await asyncio.to_thread(lambda: urllib.request.urlopen(f"{http}/metrics").read())
        samples = {
            line.split(" ")[0]: float(line.split(" ")[1])
            for line in body.decode().splitlines()
            if line.startswith("inkroom_sfu_")
        }
        assert samples["inkroom_sfu_calls"] >= 1
        assert samples["inkroom_sfu_participants"] >= 2
        assert samples['inkroom_sfu_packets_out_total{kind="audio"}'] > 0
        assert samples['inkroom_sfu_packets_in_total{kind="audio"}'] > 0


async def test_the_check_page_media_round_trip_is_a_call_of_its_own(server: str) -> None:
    async with call_peer(call_url(server, Role.TUTOR, "tutor")) as tutor:
        async with call_peer(call_url(server, Role.OBSERVER, "olga") + "&check=1") as check:
            await check.publish(Tone(), MovingPicture(160, 120, 30))  # allowed: alone there
            assert check.joined is not None
            assert [p["userId"] for p in check.joined["participants"]] == ["olga"]
            assert check.errors == []
        assert not any(m["type"] == "participant-joined" for m in tutor.messages)
