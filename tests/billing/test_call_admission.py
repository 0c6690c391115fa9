"""The call goes through the classroom gate with video: a classroom whose owner has no
access, or whose plan has no video, cannot start a call (``/sfu/{C}`` closes with 4402),
students and tutor alike; a plan with video lets the class in."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import websockets

from server.auth import Role, issue

from . import test_gate
from .test_gate import SECRET, lesson

VIDEO_PLANS = json.dumps(
    [
        {
            "key": "solo",
            "stripe_price": "price_solo",
            "name": "Solo with video",
            "students_per_classroom": 5,
            "video": True,
            "trial_days": 14,
        }
    ]
)


async def _call(ws: str, classroom: str, role: Role, user: str) -> tuple[str, int | None, str]:
    """Joins the call; the first message's type (or ``closed``) and the close code."""
    token = issue(SECRET, classroom=classroom, role=role, user_id=user)
    async with websockets.connect(f"{ws}/sfu/{classroom}?token={token}") as conn:
        try:
            await conn.send('{"type":"join"}')
            first = json.loads(await asyncio.wait_for(conn.recv(), 10))
            return first["type"], None, ""
        except websockets.ConnectionClosed as exc:
            close = exc.rcvd
            return (
                "closed",
                None if close is None else close.code,
                "" if close is None else close.reason,
            )


def test_a_plan_without_video_cannot_start_a_call(tmp_path: Path) -> None:
    with lesson(tmp_path) as ls:  # the Solo plan of test_gate: no video
        student = asyncio.run(_call(ls.ws, ls.classroom, Role.STUDENT, "s1"))
        tutor = asyncio.run(_call(ls.ws, ls.classroom, Role.TUTOR, "t1"))
    reason = "video calls are not part of the tutor's plan"
    assert student == ("closed", 4402, reason)
    assert tutor == ("closed", 4402, reason)


def test_a_lapsed_owner_cannot_start_a_call_and_a_plan_with_video_can(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(test_gate, "PLANS", VIDEO_PLANS)
    with lesson(tmp_path) as ls:
        assert asyncio.run(_call(ls.ws, ls.classroom, Role.TUTOR, "t1"))[0] == "joined"
        assert asyncio.run(_call(ls.ws, ls.classroom, Role.STUDENT, "s1"))[0] == "joined"
        ls.step("paused")  # the trial ended without a card: lapsed
        tutor = asyncio.run(_call(ls.ws, ls.classroom, Role.TUTOR, "t1"))
        newcomer = asyncio.run(_call(ls.ws, ls.classroom, Role.STUDENT, "s2"))
    assert tutor[:2] == ("closed", 4402)
    assert newcomer[:2] == ("closed", 4402)
    assert "This class is paused" in newcomer[2]
