"""Errors of the SFU, each with the code a signaling ``error`` message carries.

``server`` turns them into replies (and, for the few that end a session, close codes) in
one place; nothing in ``sfu`` writes to a socket.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    """Machine-readable codes of ``{"type": "error"}`` replies (documented in docs/sfu.md)."""

    BAD_MESSAGE = "bad-message"
    BAD_STATE = "bad-state"
    FORBIDDEN = "forbidden"
    NEGOTIATION_FAILED = "negotiation-failed"
    CALL_FULL = "call-full"
    ELSEWHERE = "elsewhere"
    INTERNAL = "internal"


class SfuError(Exception):
    """Base class: one participant's request failed; the call goes on."""

    code: ErrorCode = ErrorCode.INTERNAL


class SignalingError(SfuError, ValueError):
    """A message that does not decode as a signaling message (exact reason in ``str``)."""

    code = ErrorCode.BAD_MESSAGE


class BadState(SfuError):
    """A well-formed message that makes no sense now (an answer nobody asked for)."""

    code = ErrorCode.BAD_STATE


class Forbidden(SfuError):
    """The participant's role does not allow it (an observer publishing)."""

    code = ErrorCode.FORBIDDEN


class NegotiationFailed(SfuError):
    """An SDP or ICE candidate that aiortc refused."""

    code = ErrorCode.NEGOTIATION_FAILED


class CallFull(SfuError):
    """The call holds its maximum number of participants."""

    code = ErrorCode.CALL_FULL
