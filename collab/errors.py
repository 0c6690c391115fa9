"""Errors raised by the collaboration core, each carrying the WebSocket close code it maps to.

The server translates these into close frames in exactly one place; nothing in ``collab``
closes a socket with a bare number.
"""

from __future__ import annotations

from enum import IntEnum


class CloseCode(IntEnum):
    """Close codes Inkroom sends. 4400-4499 are permanent: y-websocket stops reconnecting."""

    NORMAL = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    UNSUPPORTED_DATA = 1003
    INVALID_PAYLOAD = 1007
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    INTERNAL_ERROR = 1011
    SERVICE_RESTART = 1012
    TRY_AGAIN_LATER = 1013
    UNAUTHORIZED = 4401
    FORBIDDEN = 4403
    NOT_FOUND = 4404
    GONE = 4410  # the classroom was archived
    TOO_MANY = 4429


class CollabError(Exception):
    """Base class: something went wrong with one connection; the room is unaffected."""

    close_code: CloseCode = CloseCode.INTERNAL_ERROR


class ProtocolError(CollabError, ValueError):
    """A frame that does not decode as a y-websocket message."""

    close_code = CloseCode.PROTOCOL_ERROR


class InvalidUpdate(CollabError, ValueError):
    """A well-framed sync message whose Yjs update or state vector is corrupt."""

    close_code = CloseCode.INVALID_PAYLOAD


class MessageTooBig(CollabError):
    """A frame larger than the configured maximum."""

    close_code = CloseCode.MESSAGE_TOO_BIG


class UnsupportedData(CollabError):
    """A text frame: the y-websocket protocol is binary only."""

    close_code = CloseCode.UNSUPPORTED_DATA


class RateLimited(CollabError):
    """A connection sent more messages than its budget allows."""

    close_code = CloseCode.POLICY_VIOLATION


class DocumentTooLarge(CollabError):
    """An update would take the document past ``max_document_bytes``; it is not applied."""

    close_code = CloseCode.MESSAGE_TOO_BIG


class SlowConsumer(CollabError):
    """A client's outbox filled up: it is closed and left to resync."""

    close_code = CloseCode.TRY_AGAIN_LATER


class RoomUnavailable(CollabError):
    """The document could not be loaded (store down); the client should retry later."""

    close_code = CloseCode.TRY_AGAIN_LATER


class RoomFull(CollabError):
    """A room holds its maximum number of clients."""

    close_code = CloseCode.TRY_AGAIN_LATER


class NodeFull(CollabError):
    """This node holds its maximum number of documents."""

    close_code = CloseCode.TRY_AGAIN_LATER


class QuotaExceeded(CollabError):
    """One namespace (a classroom) holds its share of this node's documents."""

    close_code = CloseCode.TOO_MANY


class BusUnavailable(CollabError):
    """The bus could not take a message that must reach every node (a control call)."""

    close_code = CloseCode.TRY_AGAIN_LATER


class ConnectionEnded(CollabError):
    """A control call ended this connection (staff action, classroom closed, access revoked)."""

    def __init__(self, message: str, code: CloseCode) -> None:
        super().__init__(message)
        self.close_code = code
