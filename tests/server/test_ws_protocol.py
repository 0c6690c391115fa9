"""The pre-framed binary frames of the direct send path, checked by websockets' own parser."""

from __future__ import annotations

import pytest
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from server.ws_protocol import binary_frame


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536, 300_000])
def test_binary_frame_parses_as_one_unmasked_final_binary_frame(size: int) -> None:
    payload = bytes(i % 251 for i in range(size))
    reader = StreamReader()
    reader.feed_data(binary_frame(payload))
    parser = Frame.parse(reader.read_exact, mask=False)
    try:
        next(parser)
        raise AssertionError("the frame was incomplete")
    except StopIteration as done:
        frame = done.value
    assert isinstance(frame, Frame)
    assert (frame.opcode, frame.fin, frame.data) == (Opcode.BINARY, True, payload)
    assert not reader.buffer, "nothing after the one frame"


def test_short_header_bytes_match_rfc_6455() -> None:
    assert binary_frame(b"\x01\x02") == b"\x82\x02\x01\x02"
    assert binary_frame(bytes(126))[:4] == b"\x82\x7e\x00\x7e"
    assert binary_frame(bytes(65536))[:10] == b"\x82\x7f" + (65536).to_bytes(8, "big")
