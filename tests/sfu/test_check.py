from __future__ import annotations

from sfu.check import NO_PATH, UDP_BLOCKED, diagnose


def test_check_diagnosis_names_udp_blocked_and_no_path() -> None:
    assert diagnose(["host", "relay/tcp"], stun=True, turn=True) == [UDP_BLOCKED]
    assert diagnose(["host", "relay"], stun=True, turn=True) == [UDP_BLOCKED]
    assert diagnose(["host"], stun=True, turn=True) == [NO_PATH]
    assert diagnose(["host", "srflx", "relay/udp"], stun=True, turn=True) == []
    assert diagnose(["host"], stun=False, turn=False)[0].startswith("No STUN or TURN")
