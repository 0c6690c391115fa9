from __future__ import annotations

from sfu.codecs import h264_keyframe_start, keyframe_start, vp8_keyframe_start


def test_vp8_keyframe_start() -> None:
    # S=1, PID=0, no extension; VP8 header P bit clear: keyframe
    assert vp8_keyframe_start(bytes([0x10, 0x00, 0x9D, 0x01]))
    assert not vp8_keyframe_start(bytes([0x10, 0x01]))  # interframe
    assert not vp8_keyframe_start(bytes([0x00, 0x00]))  # not the start of a partition
    assert not vp8_keyframe_start(bytes([0x11, 0x00]))  # partition 1
    # X=1 with I (15-bit picture id), L and T bytes, then the VP8 header
    assert vp8_keyframe_start(bytes([0x90, 0xE0, 0x80, 0x01, 0x05, 0x20, 0x00]))
    assert not vp8_keyframe_start(bytes([0x90, 0xE0, 0x80, 0x01, 0x05, 0x20, 0x01]))
    assert not vp8_keyframe_start(bytes([0x90, 0x80]))  # truncated
    assert not vp8_keyframe_start(b"")


def test_h264_keyframe_start() -> None:
    assert h264_keyframe_start(bytes([0x65]))  # IDR
    assert h264_keyframe_start(bytes([0x67]))  # SPS
    assert not h264_keyframe_start(bytes([0x41]))
    assert h264_keyframe_start(bytes([0x18, 0x00, 0x02, 0x67, 0x42]))  # STAP-A with SPS
    assert h264_keyframe_start(bytes([0x7C, 0x85]))  # FU-A start of IDR
    assert not h264_keyframe_start(bytes([0x7C, 0x05]))  # FU-A continuation


def test_dispatch() -> None:
    assert keyframe_start("vp8", bytes([0x10, 0x00]))
    assert not keyframe_start("opus", bytes([0x10, 0x00]))
