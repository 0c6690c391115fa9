"""Errors of the server edge, each with its WebSocket close code and HTTP status."""

from __future__ import annotations

from collab.errors import CloseCode


class ServerError(Exception):
    close_code: int = CloseCode.INTERNAL_ERROR
    status_code: int = 500


class InvalidToken(ServerError):
    """Missing, forged, expired or malformed token: permanent, the client stops retrying."""

    close_code = CloseCode.UNAUTHORIZED
    status_code = 401


class Forbidden(ServerError):
    """A valid token for another classroom, or a malformed document name."""

    close_code = CloseCode.FORBIDDEN
    status_code = 403


class NotFound(ServerError):
    """A document the classroom does not have (students cannot bring one into existence)."""

    close_code = CloseCode.NOT_FOUND
    status_code = 404


class QuotaExceeded(ServerError):
    """Too many connections for one user or one classroom: the client should not retry."""

    close_code = CloseCode.TOO_MANY
    status_code = 429


class ClassroomArchived(ServerError):
    """The classroom was archived: no new connections, open ones are ended."""

    close_code = 4410
    status_code = 410


# Reasons sent with the close codes that end open connections (``Connections.end_*``):
# the client shows a screen for each.
REVOKED = "revoked"
REMOVED = "removed"
ARCHIVED = "archived"
EXPIRED = "token expired"
