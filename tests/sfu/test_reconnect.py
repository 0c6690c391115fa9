"""A client whose transport fails gets fresh connections without leaving the call.

aiortc has no ICE restart: the client closes both connections and sends ``reconnect``;
the server drops its side, offers a new subscribing connection and answers a new
publishing offer. The call, the participant and the signaling stay; nobody sees a leave.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from sfu.call import SfuConfig
from sfu.policy import Role
from sfu.service import Sfu
from sfu.synthetic import MovingPicture, Tone

from .peers import joined, until

pytestmark = pytest.mark.anyio


@pytest.fixture
async def sfu() -> AsyncIterator[Sfu]:
    async with Sfu(SfuConfig()) as node:
        yield node


async def test_a_client_with_a_dead_transport_rejoins_media_in_the_same_call(sfu: Sfu) -> None:
    async with (
        joined(sfu, "c", "tutor", Role.TUTOR) as tutor,
        joined(sfu, "c", "ann", Role.STUDENT) as ann,
    ):
        await tutor.publish(Tone(), MovingPicture(160, 120, 30))
        await ann.publish(Tone(amplitude=0.5))
        assert tutor.joined is not None
        assert ann.joined is not None
        tid, aid = tutor.joined["participant"], ann.joined["participant"]

        def sees_tutor(n: int) -> bool:
            return any(r.frames > n for r in ann.slots_of(tid, "video"))

        def tutor_hears_ann(n: int) -> bool:
            return any(r.frames > n for r in tutor.slots_of(aid, "audio"))

        await until(lambda: sees_tutor(10) and tutor_hears_ann(10), 10)
        heard = sum(r.frames for r in tutor.slots_of(aid, "audio"))

        # Her network changed: the old connections are dead. Fresh ones, same call.
        await ann.reconnect(Tone(amplitude=0.5))
        await until(lambda: sees_tutor(10), 15)
        await until(lambda: tutor_hears_ann(heard + 10), 15)

        call = sfu.calls["c"]
        assert sorted(p.id for p in call.participants.values()) == sorted([tid, aid])
        assert not any(m["type"] == "participant-left" for m in tutor.messages)
        assert ann.errors == []
        assert tutor.errors == []
