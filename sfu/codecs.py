"""Keyframe detection on RTP payloads, without decoding (pure).

The forwarder starts a subscriber's video on a keyframe: anything before it would only
produce decode errors and a grey picture until the next one.
"""

from __future__ import annotations


def vp8_keyframe_start(payload: bytes) -> bool:
    """Whether ``payload`` (a VP8 RTP payload, RFC 7741) starts a keyframe.

    True for the first packet of partition 0 (S=1, PID=0) whose VP8 payload header has the
    inverse key frame flag P clear.
    """
    if not payload:
        return False
    first = payload[0]
    if not first & 0x10 or first & 0x07:  # S bit, partition index
        return False
    i = 1
    if first & 0x80:  # X: extension byte follows
        if len(payload) < 2:
            return False
        ext = payload[1]
        i = 2
        if ext & 0x80:  # I: picture id, 7 or 15 bits
            if len(payload) <= i:
                return False
            i += 2 if payload[i] & 0x80 else 1
        if ext & 0x40:  # L: TL0PICIDX
            i += 1
        if ext & 0x30:  # T or K: TID/KEYIDX byte
            i += 1
    if len(payload) <= i:
        return False
    return not payload[i] & 0x01


def h264_keyframe_start(payload: bytes) -> bool:
    """Whether an H.264 RTP payload (RFC 6184) carries the start of an IDR or an SPS."""
    if not payload:
        return False
    nal_type = payload[0] & 0x1F
    if nal_type in (5, 7):
        return True
    if nal_type == 24:  # STAP-A: 16-bit sizes, then NAL units
        i = 1
        while i + 2 < len(payload):
            size = int.from_bytes(payload[i : i + 2], "big")
            if payload[i + 2] & 0x1F in (5, 7):
                return True
            i += 2 + size
        return False
    if nal_type == 28 and len(payload) > 1:  # FU-A: start bit and inner type
        return bool(payload[1] & 0x80) and payload[1] & 0x1F in (5, 7)
    return False


def keyframe_start(codec: str, payload: bytes) -> bool:
    """Dispatches on the codec's MIME subtype (``VP8``, ``H264``); other codecs: False."""
    name = codec.upper()
    if name == "VP8":
        return vp8_keyframe_start(payload)
    if name == "H264":
        return h264_keyframe_start(payload)
    return False
