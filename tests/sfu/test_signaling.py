from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sfu.errors import ErrorCode, SignalingError
from sfu.policy import Kind
from sfu.signaling import (
    Answer,
    AudioOnly,
    Candidate,
    Description,
    Error,
    Join,
    Leave,
    Mute,
    Offer,
    Pause,
    Stats,
    Tracks,
    Unpublish,
    encode,
    parse,
)

SDP = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\n"


def test_parses_every_client_message() -> None:
    assert parse('{"type":"join"}') == Join()
    assert parse(json.dumps({"type": "offer", "sdp": SDP})) == Offer(SDP, "pub")
    assert parse(json.dumps({"type": "answer", "pc": "sub", "sdp": SDP})) == Answer(SDP, "sub")
    line = "candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host"
    assert parse(
        json.dumps(
            {"type": "candidate", "pc": "pub", "candidate": line, "sdpMid": "0", "sdpMLineIndex": 0}
        )
    ) == Candidate("pub", line, "0", 0)
    # the browser's RTCIceCandidateInit passed whole, and end-of-candidates as null
    nested = {"type": "candidate", "pc": "sub", "candidate": {"candidate": line, "sdpMid": "1"}}
    assert parse(json.dumps(nested)) == Candidate("sub", line, "1", None)
    assert parse('{"type":"candidate","pc":"sub","candidate":null}') == Candidate("sub", "")
    assert parse('{"type":"unpublish","kind":"video"}') == Unpublish(Kind.VIDEO)
    assert parse('{"type":"mute","kind":"audio","muted":true}') == Mute(Kind.AUDIO, True)
    assert parse('{"type":"stats","report":{"rtt":0.1}}') == Stats({"rtt": 0.1})
    assert parse('{"type":"leave"}') == Leave()
    assert parse('{"type":"audio-only","enabled":true}') == AudioOnly(True)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("nope", "message is not JSON"),
        ("[1]", "message must be a JSON object"),
        ('{"type":"dance"}', "unknown message type 'dance'"),
        ('{"type":7}', "'type' must be a string"),
        ('{"type":"offer"}', "'sdp' must be a string"),
        ('{"type":"offer","sdp":"hello"}', "'sdp' is not a session description"),
        (json.dumps({"type": "offer", "pc": "sub", "sdp": SDP}), "'pc' must be 'pub' here"),
        (json.dumps({"type": "answer", "pc": "x", "sdp": SDP}), "'pc' must be 'pub' or 'sub'"),
        ('{"type":"mute","kind":"smell","muted":true}', "'kind' must be 'audio' or 'video'"),
        ('{"type":"mute","kind":"audio","muted":1}', "'muted' must be true or false"),
        (
            '{"type":"candidate","pc":"pub","candidate":"x","sdpMLineIndex":true}',
            "'sdpMLineIndex' must be a small integer or null",
        ),
        ('{"type":"stats","report":[]}', "'report' must be an object"),
        ('{"type":"audio-only","enabled":"yes"}', "'enabled' must be true or false"),
        (json.dumps({"type": "stats", "report": {"x": "y" * 9000}}), "'report' exceeds 8192 bytes"),
        ("[" * 100_000, "message is not JSON"),
        (" " * (256 * 1024 + 1), "message exceeds 262144 bytes"),
    ],
)
def test_rejects_malformed_messages_with_exact_reasons(text: str, reason: str) -> None:
    with pytest.raises(SignalingError) as info:
        parse(text)
    assert str(info.value) == reason
    assert info.value.code is ErrorCode.BAD_MESSAGE


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=20),
        lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
        max_leaves=20,
    )
)
def test_anything_either_parses_or_raises_signaling_error(value: object) -> None:
    for candidate in (
        value,
        {"type": "offer", "sdp": value},
        {"type": "candidate", "pc": "pub", "candidate": value},
    ):
        with contextlib.suppress(SignalingError):
            parse(json.dumps(candidate))


def test_server_messages_encode_with_their_type() -> None:
    assert json.loads(encode(Description("offer", "sub", SDP))) == {
        "type": "offer",
        "pc": "sub",
        "sdp": SDP,
    }
    assert json.loads(encode(Pause("video", True))) == {
        "type": "pause",
        "kind": "video",
        "paused": True,
    }
    assert json.loads(encode(Error(ErrorCode.BAD_STATE, "why", "answer")))["code"] == "bad-state"
    tracks = {"0": {"kind": "audio", "participant": "p1", "userId": "u"}}
    assert json.loads(encode(Tracks(tracks))) == {"type": "tracks", "tracks": tracks}


def test_loopback_only_keeps_loopback_candidates() -> None:
    from sfu.participant import loopback_candidates_only

    sdp = (
        "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"
        "a=candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host\r\n"
        "a=candidate:2 1 udp 2130706431 10.1.2.3 5001 typ host\r\n"
        "a=candidate:3 1 udp 2130706431 abcd.local 5002 typ host\r\n"
        "a=mid:0\r\n"
    )
    assert loopback_candidates_only(sdp) == (
        "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"
        "a=candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host\r\n"
        "a=mid:0\r\n"
    )
