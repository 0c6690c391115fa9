"""The connectivity diagnosis of the ``/check`` page, for Python participants (pure).

The same rules as ``frontend/src/check/checks.ts``: which network paths the ICE
candidates show, said in plain words.
"""

from __future__ import annotations

from collections.abc import Iterable

UDP_BLOCKED = "UDP blocked: this network lets calls through only over TCP/TLS relays."
NO_PATH = "No path out found: neither UDP nor the TCP/TLS relays answered."


def diagnose(candidate_types: Iterable[str], *, stun: bool, turn: bool) -> list[str]:
    """Notes for candidate types such as ``host``, ``srflx``, ``relay/udp``, ``relay/tcp``.

    A relay gathered without any server-reflexive candidate while STUN was offered means
    UDP does not get out: the relay was reached over TCP or TLS.
    """
    types = set(candidate_types)
    relay = any(t.startswith("relay") for t in types)
    udp_out = "srflx" in types or "relay/udp" in types
    if (stun or turn) and not udp_out and relay:
        return [UDP_BLOCKED]
    if (stun or turn) and not udp_out:
        return [NO_PATH]
    if not stun and not turn:
        return ["No STUN or TURN servers configured: only direct connections were tested."]
    return []
