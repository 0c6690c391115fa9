"""ICE servers handed to each call participant, with TURN REST-style credentials.

The scheme coturn implements with ``use-auth-secret`` / ``static-auth-secret``: the
username is ``EXPIRY:USER`` (a Unix time), the password is
``base64(HMAC-SHA1(secret, username))``. coturn recomputes it from the shared secret and
refuses it after the expiry, so credentials need no database and leak only for ``ttl``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any

from .settings import Settings


def turn_credentials(
    secret: str, user_id: str, ttl: int, now: float | None = None
) -> tuple[str, str]:
    """``(username, password)`` valid until ``now + ttl``."""
    expiry = int(now if now is not None else time.time()) + ttl
    username = f"{expiry}:{user_id}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode()


def ice_servers(settings: Settings, user_id: str, now: float | None = None) -> list[dict[str, Any]]:
    """RTCIceServer dictionaries: STUN, then TURN when a secret and URLs are configured."""
    servers: list[dict[str, Any]] = []
    if settings.stun_urls:
        servers.append({"urls": list(settings.stun_urls)})
    if settings.turn_urls and settings.turn_secret:
        username, credential = turn_credentials(
            settings.turn_secret, user_id, settings.turn_ttl, now
        )
        servers.append(
            {"urls": list(settings.turn_urls), "username": username, "credential": credential}
        )
    return servers
