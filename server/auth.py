"""Signed access tokens (JWT, HS256 via PyJWT) and the document access rule."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from enum import StrEnum

import jwt

from collab.errors import CloseCode
from collab.ports import Peer

from .errors import Forbidden, InvalidToken, NotFound

ALGORITHM = "HS256"


class _KnownKeyHMAC(jwt.algorithms.HMACAlgorithm):
    """HS256 whose key checks run once per secret, not once per token.

    PyJWT re-examines the secret on every verification (is it a PEM, SSH or DER key,
    is it JSON?), a quarter of the CPU of accepting a connection. The node's secrets are
    few and fixed; the checks still run, once each.
    """

    def __init__(self) -> None:
        super().__init__(jwt.algorithms.HMACAlgorithm.SHA256)
        self._prepared: dict[str | bytes, bytes] = {}

    def prepare_key(self, key: str | bytes) -> bytes:
        prepared = self._prepared.get(key)
        if prepared is None:
            prepared = super().prepare_key(key)
            if len(self._prepared) < 16:  # a node's current and previous secrets
                self._prepared[key] = prepared
        return prepared


_jwt = jwt.PyJWT()
_jwt._jws._algorithms[ALGORITHM] = _KnownKeyHMAC()
# Document names: path-like segments of safe characters, as used in URLs by y-websocket.
# Matched with ``fullmatch`` (``$`` would accept a trailing newline). The total length
# fits every store's key column (512) with room to spare.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}(/[A-Za-z0-9_.\-]{1,64}){0,3}")
_CLASSROOM = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}")
MAX_NAME = 200
CLASSROOM_ID = _CLASSROOM


class Role(StrEnum):
    TUTOR = "tutor"
    STUDENT = "student"
    OBSERVER = "observer"
    ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class Claims:
    user_id: str
    name: str
    classroom: str
    role: Role
    expires_at: int

    def peer(self) -> Peer:
        return Peer(
            user_id=self.user_id,
            name=self.name,
            role=self.role.value,
            read_only=self.role is Role.OBSERVER,
        )


def issue(
    secret: str,
    *,
    classroom: str,
    role: Role,
    user_id: str,
    name: str = "",
    ttl: int = 3600,
    now: float | None = None,
) -> str:
    """Signs a token. Raises ``ValueError`` for a malformed classroom id or TTL."""
    if not _CLASSROOM.fullmatch(classroom):
        raise ValueError(f"invalid classroom id {classroom!r}")
    if ttl <= 0:
        raise ValueError("ttl must be positive")
    issued = int(now if now is not None else time.time())
    payload = {
        "sub": user_id,
        "name": name,
        "cls": classroom,
        "role": role.value,
        "iat": issued,
        "exp": issued + ttl,
    }
    return jwt.encode(payload, secret, algorithm=ALGORITHM)


def verify(secret: str, token: str | None) -> Claims:
    """Checks signature, expiry and shape.

    Raises:
        InvalidToken: missing, forged, expired or malformed; the reason never echoes the token.
    """
    if not token:
        raise InvalidToken("missing token")
    try:
        data = _jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            options={"require": ["exp", "sub", "cls", "role"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise InvalidToken("token expired") from exc
    except jwt.InvalidTokenError as exc:
        raise InvalidToken(f"invalid token ({type(exc).__name__})") from exc
    try:
        role = Role(data["role"])
    except ValueError as exc:
        raise InvalidToken("unknown role") from exc
    classroom, user = data["cls"], data["sub"]
    if not isinstance(classroom, str) or not isinstance(user, str) or not user:
        raise InvalidToken("malformed claims")
    return Claims(user, str(data.get("name") or ""), classroom, role, int(data["exp"]))


def authorize(claims: Claims, document: str) -> None:
    """A classroom token opens ``C`` and ``C/...``; an admin token opens every document.

    Raises:
        Forbidden: the name is malformed or outside the token's classroom.
    """
    if len(document) > MAX_NAME or not _NAME.fullmatch(document) or ".." in document:
        raise Forbidden("invalid document name")
    if claims.role is Role.ADMIN:
        return
    if document != claims.classroom and not document.startswith(claims.classroom + "/"):
        raise Forbidden("document outside the token's classroom")


def require_document(claims: Claims, document: str) -> None:
    """Students and observers open only the documents their classroom has.

    Raises:
        NotFound: any other name (close code 4404: the client stops retrying).
    """
    if claims.role in (Role.STUDENT, Role.OBSERVER) and document not in (
        claims.classroom + "/board",
        claims.classroom + "/class",
    ):
        # The classroom's schema: students and observers open what exists for them and
        # can never bring a new document into existence (or fill the node with names).
        raise NotFound("this classroom has no such document")


__all__ = ["Claims", "CloseCode", "Role", "authorize", "issue", "require_document", "verify"]
