"""The HTTP edge of accounts: who is asking (session cookie, bearer session or bearer
access token), device grants, the Origin check and the sign-in rate limit."""

from __future__ import annotations

import asyncio
import json
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

import jwt
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from .accounts import Account, Classroom, Directory
from .auth import ALGORITHM, Claims, Role, verify
from .errors import InvalidToken
from .settings import Settings

SESSION_COOKIE = "inkroom_session"
GRANT_COOKIE = "inkroom_grant_"  # + classroom id: one per classroom joined on this device
GRANT_TTL = 180 * 24 * 3600
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}

T = TypeVar("T")


async def run(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Runs a blocking directory call off the event loop."""
    return await asyncio.to_thread(fn, *args, **kwargs)


def error(status: int, message: str, reason: str, **extra: Any) -> JSONResponse:
    """A JSON error: ``error`` is for people, ``reason`` for the client's screens."""
    return JSONResponse({"error": message, "reason": reason, **extra}, status_code=status)


MAX_JSON_BODY = 16 * 1024


async def json_body(request: Request) -> dict[str, Any] | None:
    """The request's JSON object, or ``None`` if it is not one or exceeds 16 KiB (read
    in chunks, so a huge body is never held whole)."""
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_JSON_BODY:
            return None
    try:
        body = json.loads(raw)
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


# -- who is asking -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Principal:
    """An account (session cookie or bearer session) or an access token (bearer JWT)."""

    account: Account | None = None
    claims: Claims | None = None
    session: str | None = None

    @property
    def is_admin(self) -> bool:
        if self.account is not None:
            return self.account.is_admin
        return self.claims is not None and self.claims.role is Role.ADMIN

    def manages(self, classroom_id: str, classroom: Classroom | None) -> bool:
        """May rename, archive and invite to the classroom: its owner, an admin, or the
        bearer of a tutor token for it."""
        if self.is_admin:
            return True
        if self.account is not None:
            return classroom is not None and classroom.owner_id == self.account.id
        return (
            self.claims is not None
            and self.claims.role is Role.TUTOR
            and self.claims.classroom == classroom_id
        )


def bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip() or None
    return None


async def principal(request: Request, directory: Directory, secret: str) -> Principal | None:
    """The caller, or ``None`` when anonymous.

    Raises:
        InvalidToken: a bearer credential was sent and is not valid (never silently
            anonymous: a script with a stale token should hear about it).
    """
    token = bearer(request)
    if token is not None:
        if token.count(".") == 2:  # a JWT access token
            return Principal(claims=verify(secret, token))
        account = await run(directory.session_account, token)
        if account is None:
            raise InvalidToken("invalid or expired session")
        return Principal(account=account, session=token)
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        account = await run(directory.session_account, cookie)
        if account is not None:
            return Principal(account=account, session=cookie)
    return None


# -- cookies ---------------------------------------------------------------------------


def set_cookie(response: Response, settings: Settings, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="lax",
        secure=settings.secure_cookies,
    )


def clear_cookie(response: Response, settings: Settings, name: str) -> None:
    response.delete_cookie(
        name, path="/", httponly=True, samesite="lax", secure=settings.secure_cookies
    )


def _grant_key(secret: str) -> str:
    # A key of its own: a grant can never pass for an access token, nor the reverse.
    return secret + ":device-grant"


def issue_grant(secret: str, classroom: str, member_id: str) -> str:
    issued = int(time.time())
    payload = {"typ": "grant", "sub": member_id, "cls": classroom, "iat": issued}
    payload["exp"] = issued + GRANT_TTL
    return jwt.encode(payload, _grant_key(secret), algorithm=ALGORITHM)


def grant_member(request: Request, secret: str, classroom: str) -> str | None:
    """The member id in this device's grant for ``classroom``, if it holds a valid one."""
    value = request.cookies.get(GRANT_COOKIE + classroom)
    if not value:
        return None
    try:
        data = jwt.decode(
            value, _grant_key(secret), algorithms=[ALGORITHM], options={"require": ["exp", "sub"]}
        )
    except jwt.InvalidTokenError:
        return None
    if data.get("typ") != "grant" or data.get("cls") != classroom:
        return None
    sub = data.get("sub")
    return sub if isinstance(sub, str) else None


def public_base(request: Request, settings: Settings) -> str:
    """``INKROOM_PUBLIC_URL``, else the base the request came in on."""
    if settings.public_url:
        return settings.public_url.rstrip("/")
    return str(request.base_url).rstrip("/")


# -- Origin check ----------------------------------------------------------------------


class OriginCheck:
    """Refuses state-changing ``/api`` requests from other origins (403).

    A browser sends ``Origin`` with every cross-origin POST, PUT, PATCH and DELETE, so
    one that names another site is refused. Without ``Origin``, a request that carries
    one of our cookies is refused too (unless ``Referer`` is ours); one without cookies
    carries no ambient credentials and is a script's (curl with a bearer token).
    """

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.public = _origin(settings.public_url) if settings.public_url else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] not in SAFE_METHODS
            and scope["path"].startswith("/api/")
            and not self.allowed(scope)
        ):
            response = error(403, "cross-origin request refused", "origin")
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def allowed(self, scope: Scope) -> bool:
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        origin = headers.get("origin")
        if origin is None:
            cookies = headers.get("cookie", "")
            if SESSION_COOKIE not in cookies and GRANT_COOKIE not in cookies:
                return True
            referer = headers.get("referer")
            if referer is None:
                return False
            origin = _origin(referer)
        return self.same_origin(origin, scope, headers.get("host", ""))

    def same_origin(self, origin: str, scope: Scope, host: str) -> bool:
        origin = origin.rstrip("/").lower()
        if origin == "null" or not origin:
            return False
        if self.public is not None:
            return origin == self.public
        # Without a public URL, the Host the browser used is the site: compare authority,
        # so a TLS-terminating proxy in front (https outside, http inside) still matches.
        return urlsplit(origin).netloc == host.lower()


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


# -- rate limit ------------------------------------------------------------------------


class Attempts:
    """A sliding-window counter per key (in memory, per node), with a bounded key set."""

    def __init__(self, limit: int, window: float, *, max_keys: int = 50_000) -> None:
        self.limit = limit
        self.window = window
        self.max_keys = max_keys
        self._hits: OrderedDict[str, deque[float]] = OrderedDict()

    def _recent(self, key: str, at: float) -> deque[float]:
        hits = self._hits.get(key)
        if hits is None:
            return deque()
        while hits and hits[0] <= at - self.window:
            hits.popleft()
        if not hits:
            del self._hits[key]
        return hits

    def retry_after(self, key: str, at: float | None = None) -> int | None:
        """Seconds until another attempt is allowed, or ``None`` if it is allowed now."""
        at = time.monotonic() if at is None else at
        hits = self._recent(key, at)
        if len(hits) < self.limit:
            return None
        return max(1, int(hits[0] + self.window - at) + 1)

    def hit(self, key: str, at: float | None = None) -> None:
        at = time.monotonic() if at is None else at
        hits = self._hits.setdefault(key, deque())
        hits.append(at)
        self._hits.move_to_end(key)
        while len(self._hits) > self.max_keys:
            self._hits.popitem(last=False)

    def clear(self, key: str) -> None:
        self._hits.pop(key, None)


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"
