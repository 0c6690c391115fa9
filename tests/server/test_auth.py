"""Tokens: signature, expiry, roles, and the classroom scope of documents."""

from __future__ import annotations

import time

import jwt
import pytest

from server.auth import Role, authorize, issue, verify
from server.errors import Forbidden, InvalidToken

SECRET = "test-secret-" + "0123456789abcdef" * 4


def test_issued_token_round_trips_its_claims() -> None:
    token = issue(SECRET, classroom="c1", role=Role.TUTOR, user_id="u1", name="Ada", ttl=60)
    claims = verify(SECRET, token)
    assert (claims.user_id, claims.name, claims.classroom, claims.role) == (
        "u1",
        "Ada",
        "c1",
        Role.TUTOR,
    )
    assert claims.peer().read_only is False


def test_observer_peer_is_read_only() -> None:
    claims = verify(SECRET, issue(SECRET, classroom="c1", role=Role.OBSERVER, user_id="o"))
    assert claims.peer().read_only is True


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (None, "missing token"),
        ("", "missing token"),
        ("garbage", "invalid token (DecodeError)"),
        (
            issue(
                "another-secret-0123456789-abcdefghij", classroom="c1", role=Role.TUTOR, user_id="u"
            ),
            "invalid token (InvalidSignatureError)",
        ),
        (
            issue(
                SECRET, classroom="c1", role=Role.TUTOR, user_id="u", ttl=1, now=time.time() - 10
            ),
            "token expired",
        ),
        (
            jwt.encode(
                {"sub": "u", "cls": "c1", "role": "king", "exp": time.time() + 3600}, SECRET
            ),
            "unknown role",
        ),
        (
            jwt.encode({"sub": "u", "cls": "c1", "exp": time.time() + 3600}, SECRET),
            "invalid token (MissingRequiredClaimError)",
        ),
        (
            jwt.encode(
                {"sub": "u", "cls": "c1", "role": "tutor", "exp": time.time() + 3600},
                SECRET,
                algorithm="HS512",
            ),
            "invalid token (InvalidAlgorithmError)",
        ),
    ],
)
def test_bad_tokens_are_refused_with_a_reason(token: str | None, reason: str) -> None:
    with pytest.raises(InvalidToken) as info:
        verify(SECRET, token)
    assert str(info.value) == reason


def test_unsigned_token_is_refused() -> None:
    unsigned = jwt.encode(
        {"sub": "u", "cls": "c1", "role": "admin", "exp": time.time() + 3600},
        None,  # type: ignore[arg-type]  # typed strictly since cryptography (aiortc) is installed
        algorithm="none",
    )
    with pytest.raises(InvalidToken):
        verify(SECRET, unsigned)


@pytest.mark.parametrize("document", ["c1", "c1/board", "c1/class", "c1/pages/2"])
def test_classroom_token_opens_its_documents(document: str) -> None:
    authorize(
        verify(SECRET, issue(SECRET, classroom="c1", role=Role.STUDENT, user_id="s")), document
    )


@pytest.mark.parametrize(
    "document", ["c2", "c10", "c1x/board", "c2/board", "", "c1/../c2", "/c1", "c1//x"]
)
def test_classroom_token_is_refused_elsewhere(document: str) -> None:
    claims = verify(SECRET, issue(SECRET, classroom="c1", role=Role.TUTOR, user_id="t"))
    with pytest.raises(Forbidden):
        authorize(claims, document)


def test_admin_opens_every_classroom() -> None:
    claims = verify(SECRET, issue(SECRET, classroom="ops", role=Role.ADMIN, user_id="a"))
    authorize(claims, "c2/board")
    with pytest.raises(Forbidden):
        authorize(claims, "bad name with spaces")
