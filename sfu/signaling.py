"""The signaling messages: JSON text frames, one object each, with a ``type`` (pure).

Client messages are parsed strictly (every byte from a client is hostile until judged)
into frozen dataclasses; anything else raises :class:`SignalingError` with an exact
reason, which the session answers with an ``error`` message without touching the call.
Server messages are frozen dataclasses too, encoded by :func:`encode`. docs/sfu.md lists
them all.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from .errors import ErrorCode, SignalingError
from .policy import Kind

MAX_MESSAGE_BYTES = 256 * 1024
MAX_STATS_BYTES = 8 * 1024
MAX_CANDIDATE_CHARS = 1024
Pc = Literal["pub", "sub"]

# -- client -> server ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Join:
    """Enter the call. The reply is ``joined``."""


@dataclass(frozen=True, slots=True)
class Offer:
    """The client's offer for its publishing connection (``pc`` is always ``pub``)."""

    sdp: str
    pc: Pc = "pub"


@dataclass(frozen=True, slots=True)
class Answer:
    """The client's answer to the server's offer for the subscribing connection."""

    sdp: str
    pc: Pc = "sub"


@dataclass(frozen=True, slots=True)
class Candidate:
    """A trickled ICE candidate; ``candidate`` empty means end of candidates."""

    pc: Pc
    candidate: str
    sdp_mid: str | None = None
    sdp_mline_index: int | None = None


@dataclass(frozen=True, slots=True)
class Unpublish:
    kind: Kind


@dataclass(frozen=True, slots=True)
class Mute:
    """The client's own mute state for one kind (shown to others; media stops too)."""

    kind: Kind
    muted: bool


@dataclass(frozen=True, slots=True)
class AudioOnly:
    """Receive no video (a weak link, or to save data); audio keeps flowing."""

    enabled: bool


@dataclass(frozen=True, slots=True)
class Stats:
    """The client's latest connection statistics (kept per participant, bounded)."""

    report: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Reconnect:
    """Drop this client's peer connections (their transport failed) and start afresh:
    the server offers ``sub`` again, the client offers ``pub`` again. aiortc has no ICE
    restart, so this is how a client changes networks without leaving the call."""


@dataclass(frozen=True, slots=True)
class Leave:
    pass


ClientMessage = (
    Join | Offer | Answer | Candidate | Unpublish | Mute | AudioOnly | Stats | Reconnect | Leave
)

# -- server -> client ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ServerMessage:
    TYPE: ClassVar[str] = ""

    def to_wire(self) -> dict[str, Any]:
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class Joined(ServerMessage):
    TYPE = "joined"
    participant: str
    user_id: str
    role: str
    ice_servers: list[dict[str, Any]]
    participants: list[dict[str, Any]]
    policy: dict[str, Any]

    def to_wire(self) -> dict[str, Any]:
        return {
            "participant": self.participant,
            "userId": self.user_id,
            "role": self.role,
            "iceServers": self.ice_servers,
            "participants": self.participants,
            "policy": self.policy,
        }


@dataclass(frozen=True, slots=True)
class Description(ServerMessage):
    """``answer`` (pc ``pub``) or ``offer`` (pc ``sub``) from the server."""

    kind: Literal["offer", "answer"]
    pc: Pc
    sdp: str

    def to_wire(self) -> dict[str, Any]:
        return {"type": self.kind, "pc": self.pc, "sdp": self.sdp}


@dataclass(frozen=True, slots=True)
class Tracks(ServerMessage):
    """What each ``mid`` of the subscribing connection carries (sent before its offer,
    and again whenever a slot changes hands); a slot with ``participant: null`` is idle."""

    TYPE = "tracks"
    tracks: dict[str, dict[str, Any]]

    def to_wire(self) -> dict[str, Any]:
        return {"tracks": self.tracks}


@dataclass(frozen=True, slots=True)
class ParticipantJoined(ServerMessage):
    TYPE = "participant-joined"
    participant: dict[str, Any]

    def to_wire(self) -> dict[str, Any]:
        return {"participant": self.participant}


@dataclass(frozen=True, slots=True)
class ParticipantLeft(ServerMessage):
    TYPE = "participant-left"
    participant: str

    def to_wire(self) -> dict[str, Any]:
        return {"participant": self.participant}


@dataclass(frozen=True, slots=True)
class ParticipantState(ServerMessage):
    """A participant's own mute state and what they publish."""

    TYPE = "participant-state"
    participant: str
    muted: list[str]
    published: list[str]

    def to_wire(self) -> dict[str, Any]:
        return {"participant": self.participant, "muted": self.muted, "published": self.published}


@dataclass(frozen=True, slots=True)
class Speaking(ServerMessage):
    """A participant started or stopped speaking (their audio level, no decoding)."""

    TYPE = "speaking"
    participant: str
    speaking: bool

    def to_wire(self) -> dict[str, Any]:
        return {"participant": self.participant, "speaking": self.speaking}


@dataclass(frozen=True, slots=True)
class PolicyChanged(ServerMessage):
    TYPE = "policy"
    policy: dict[str, Any]

    def to_wire(self) -> dict[str, Any]:
        return {"policy": self.policy}


@dataclass(frozen=True, slots=True)
class Pause(ServerMessage):
    """Stop (or resume) sending ``kind``: nobody receives it, or policy forbids it."""

    TYPE = "pause"
    kind: str
    paused: bool

    def to_wire(self) -> dict[str, Any]:
        return {"kind": self.kind, "paused": self.paused}


@dataclass(frozen=True, slots=True)
class Redirect(ServerMessage):
    """The call is open on another node: reconnect to ``url`` (the same path and token);
    the server then closes with 4307."""

    TYPE = "redirect"
    node: str
    url: str

    def to_wire(self) -> dict[str, Any]:
        return {"node": self.node, "url": self.url}


@dataclass(frozen=True, slots=True)
class Quality(ServerMessage):
    """What the server forwards to this participant now, judged from their link:
    ``full video``, ``low video`` or ``audio only``, with the loss and round trip seen."""

    TYPE = "quality"
    state: str
    loss: float | None
    rtt: float | None

    def to_wire(self) -> dict[str, Any]:
        return {"state": self.state, "loss": self.loss, "rtt": self.rtt}


@dataclass(frozen=True, slots=True)
class Error(ServerMessage):
    TYPE = "error"
    code: ErrorCode
    message: str
    about: str | None = None

    def to_wire(self) -> dict[str, Any]:
        return {"code": self.code.value, "message": self.message, "about": self.about}


@dataclass(frozen=True, slots=True)
class Left(ServerMessage):
    TYPE = "left"
    reason: str = field(default="leave")

    def to_wire(self) -> dict[str, Any]:
        return {"reason": self.reason}


def encode(message: ServerMessage) -> str:
    wire = message.to_wire()
    wire.setdefault("type", message.TYPE)
    return json.dumps(wire, separators=(",", ":"))


# -- parsing ---------------------------------------------------------------------------


def _str(obj: dict[str, Any], key: str, *, limit: int = MAX_MESSAGE_BYTES) -> str:
    value = obj.get(key)
    if not isinstance(value, str):
        raise SignalingError(f"{key!r} must be a string")
    if len(value) > limit:
        raise SignalingError(f"{key!r} is too long")
    return value


def _pc(obj: dict[str, Any], expected: Pc | None = None) -> Pc:
    value = obj.get("pc", expected)
    if value not in ("pub", "sub"):
        raise SignalingError("'pc' must be 'pub' or 'sub'")
    if expected is not None and value != expected:
        raise SignalingError(f"'pc' must be {expected!r} here")
    return "pub" if value == "pub" else "sub"


def _kind(obj: dict[str, Any]) -> Kind:
    try:
        return Kind(str(obj.get("kind")))
    except ValueError:
        raise SignalingError("'kind' must be 'audio' or 'video'")


def _sdp(obj: dict[str, Any]) -> str:
    sdp = _str(obj, "sdp")
    if not sdp.startswith("v=0"):
        raise SignalingError("'sdp' is not a session description")
    return sdp


def _candidate(obj: dict[str, Any]) -> Candidate:
    pc = _pc(obj)
    value = obj.get("candidate")
    if isinstance(value, dict):  # the browser's RTCIceCandidateInit, passed whole
        obj = {**value, "pc": pc}
        value = value.get("candidate")
    if value is None:
        value = ""
    if not isinstance(value, str) or len(value) > MAX_CANDIDATE_CHARS:
        raise SignalingError("'candidate' must be a string of at most 1024 characters")
    mid = obj.get("sdpMid")
    index = obj.get("sdpMLineIndex")
    if mid is not None and (not isinstance(mid, str) or len(mid) > 32):
        raise SignalingError("'sdpMid' must be a short string or null")
    if index is not None and (
        not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < 1024
    ):
        raise SignalingError("'sdpMLineIndex' must be a small integer or null")
    return Candidate(pc, value, mid, index)


def _stats(obj: dict[str, Any]) -> Stats:
    report = obj.get("report")
    if not isinstance(report, dict):
        raise SignalingError("'report' must be an object")
    if len(json.dumps(report)) > MAX_STATS_BYTES:
        raise SignalingError(f"'report' exceeds {MAX_STATS_BYTES} bytes")
    return Stats(report)


def _mute(obj: dict[str, Any]) -> Mute:
    muted = obj.get("muted")
    if not isinstance(muted, bool):
        raise SignalingError("'muted' must be true or false")
    return Mute(_kind(obj), muted)


def parse(text: str | bytes) -> ClientMessage:
    """Decodes one client message.

    Raises:
        SignalingError: not JSON, not an object, unknown ``type``, or a field of the wrong
            shape or size; the message says which.
    """
    if len(text) > MAX_MESSAGE_BYTES:
        raise SignalingError(f"message exceeds {MAX_MESSAGE_BYTES} bytes")
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError):
        raise SignalingError("message is not JSON")
    if not isinstance(obj, dict):
        raise SignalingError("message must be a JSON object")
    kind = obj.get("type")
    if kind == "join":
        return Join()
    if kind == "offer":
        return Offer(_sdp(obj), _pc(obj, "pub"))
    if kind == "answer":
        return Answer(_sdp(obj), _pc(obj, "sub"))
    if kind == "candidate":
        return _candidate(obj)
    if kind == "unpublish":
        return Unpublish(_kind(obj))
    if kind == "mute":
        return _mute(obj)
    if kind == "stats":
        return _stats(obj)
    if kind == "audio-only":
        enabled = obj.get("enabled")
        if not isinstance(enabled, bool):
            raise SignalingError("'enabled' must be true or false")
        return AudioOnly(enabled)
    if kind == "reconnect":
        return Reconnect()
    if kind == "leave":
        return Leave()
    if not isinstance(kind, str):
        raise SignalingError("'type' must be a string")
    raise SignalingError(f"unknown message type {kind[:40]!r}")
