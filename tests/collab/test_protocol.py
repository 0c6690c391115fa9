"""The y-websocket codec: golden frames, exact errors, and properties over arbitrary bytes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from collab.errors import ProtocolError
from collab.protocol import (
    AwarenessMessage,
    Message,
    PermissionDenied,
    QueryAwareness,
    Saved,
    SavedRequest,
    SyncStep1,
    SyncStep2,
    SyncUpdate,
    decode,
    encode,
    encode_update,
)

# Frames as the stock y-websocket client (lib0 encoding) writes them.
GOLDEN: list[tuple[bytes, Message]] = [
    (bytes.fromhex("00000100"), SyncStep1(b"\x00")),  # empty state vector
    (bytes.fromhex("0001020000"), SyncStep2(b"\x00\x00")),
    (bytes.fromhex("000203010203"), SyncUpdate(b"\x01\x02\x03")),
    (bytes.fromhex("01020a0b"), AwarenessMessage(b"\x0a\x0b")),
    (bytes.fromhex("0200") + b"\x04nope", PermissionDenied("nope")),
    (bytes.fromhex("03"), QueryAwareness()),
    (bytes.fromhex("640005"), SavedRequest(5)),  # Inkroom's extension, type 100
    (bytes.fromhex("6401ac02"), Saved(300)),
]


@pytest.mark.parametrize(("frame", "message"), GOLDEN)
def test_golden_frames_decode_and_encode(frame: bytes, message: Message) -> None:
    assert decode(frame) == message
    assert encode(message) == frame


def test_large_payload_uses_multibyte_length() -> None:
    payload = bytes(300)
    frame = encode(SyncUpdate(payload))
    assert frame[:4] == bytes([0, 2, 0xAC, 0x02])  # 300 = 0b10_0101100
    assert decode(frame) == SyncUpdate(payload)
    assert encode_update(payload) == frame


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (b"", "empty frame"),
        (b"\x07", "unknown message type 7"),
        (b"\x00\x05\x00", "unknown sync message type 5"),
        (b"\x00\x02\x05ab", "truncated frame: payload declares 5 bytes, 2 left"),
        (b"\x00", "truncated frame: expected a varUint"),
        (b"\x80", "truncated frame: unterminated varUint"),
        (b"\x80" * 9 + b"\x01", "varUint longer than 53 bits"),
        (b"\x00\x02\x01ab", "1 trailing bytes after message"),
        (b"\x02\x01", "unknown auth message type 1"),
        (b"\x02\x00\x02\xff\xfe", "string is not valid UTF-8"),
        (b"\x03\x00", "1 trailing bytes after message"),
        (b"\x00\x00\x80\x00", "non-canonical varUint"),
    ],
)
def test_malformed_frames_raise_exact_errors(frame: bytes, reason: str) -> None:
    with pytest.raises(ProtocolError) as info:
        decode(frame)
    assert str(info.value) == reason


payloads = st.binary(max_size=2048)
messages = st.one_of(
    payloads.map(SyncStep1),
    payloads.map(SyncStep2),
    payloads.map(SyncUpdate),
    payloads.map(AwarenessMessage),
    st.text(max_size=200).map(PermissionDenied),
    st.just(QueryAwareness()),
    st.integers(0, 2**53 - 1).map(SavedRequest),
    st.integers(0, 2**53 - 1).map(Saved),
)


@given(messages)
def test_every_message_round_trips(message: Message) -> None:
    assert decode(encode(message)) == message


@given(st.binary(max_size=512))
def test_arbitrary_bytes_decode_or_raise_protocol_error_only(frame: bytes) -> None:
    try:
        message = decode(frame)
    except ProtocolError:
        return
    # Whatever decodes must be canonical: re-encoding gives back the same frame.
    assert encode(message) == frame


@given(messages, st.data())
def test_truncated_frames_are_rejected(message: Message, data: st.DataObject) -> None:
    frame = encode(message)
    cut = data.draw(st.integers(min_value=0, max_value=len(frame) - 1))
    with pytest.raises(ProtocolError):
        decode(frame[:cut])
