"""Who hears and sees whom in a classroom call (pure).

Tutor first: the tutor's audio and video go to everyone. A student's video goes to the
tutors, and to everyone while a tutor spotlights that student; a student's audio goes to
everyone while they speak or hold the floor, never while a tutor has muted them. An
observer receives and never publishes. The tutor's controls live in the classroom
document; ``server`` turns them into a :class:`ClassPolicy` and hands it over, so what
everyone sees in the class and what is forwarded never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    TUTOR = "tutor"
    STUDENT = "student"
    OBSERVER = "observer"


class Kind(StrEnum):
    AUDIO = "audio"
    VIDEO = "video"


@dataclass(frozen=True, slots=True)
class Member:
    """A participant as policy sees them: their user id (from the token) and role."""

    user_id: str
    role: Role


@dataclass(frozen=True, slots=True)
class ClassPolicy:
    """The tutor's controls. ``muted``/``floor``/``spotlight`` hold user ids."""

    muted: frozenset[str] = frozenset()
    floor: frozenset[str] = frozenset()
    spotlight: str | None = None
    student_video: bool = True

    def to_wire(self) -> dict[str, object]:
        return {
            "muted": sorted(self.muted),
            "floor": sorted(self.floor),
            "spotlight": self.spotlight,
            "studentVideo": self.student_video,
        }


def may_publish(member: Member, kind: Kind, policy: ClassPolicy) -> bool:
    """Whether ``member`` may send ``kind`` at all (observers never; student video only
    while allowed)."""
    if member.role is Role.OBSERVER:
        return False
    if member.role is Role.STUDENT and kind is Kind.VIDEO:
        return policy.student_video
    return True


def forwards(
    policy: ClassPolicy,
    publisher: Member,
    kind: Kind,
    subscriber: Member,
    *,
    speaking: bool,
) -> bool:
    """Whether ``publisher``'s ``kind`` goes to ``subscriber`` now.

    ``speaking`` is the publisher's voice activity (audio level), used for student audio.
    """
    if publisher.user_id == subscriber.user_id or not may_publish(publisher, kind, policy):
        return False
    if publisher.role is Role.TUTOR:
        return True
    uid = publisher.user_id
    if kind is Kind.VIDEO:
        return subscriber.role is Role.TUTOR or policy.spotlight == uid
    if uid in policy.muted:
        return False
    return speaking or uid in policy.floor or policy.spotlight == uid


class SpeechDetector:
    """Voice activity from the RFC 6464 audio level (-dBov) of each packet, no decoding.

    Speaking starts when a packet is louder than ``threshold`` dBov and lasts ``hangover``
    seconds after the last loud packet, so the ends of words are not clipped.
    """

    __slots__ = ("_last_loud", "hangover", "threshold")

    def __init__(self, *, threshold: int = 50, hangover: float = 1.0) -> None:
        self.threshold = threshold
        self.hangover = hangover
        self._last_loud: float | None = None

    def add(self, level: int | None, now: float) -> bool:
        """Feeds one packet's level (0 loudest .. 127 silent; ``None`` if absent) and
        returns whether the speaker is speaking at ``now``. A packet without the level
        extension counts as speech: nothing can be told, and silence would be worse."""
        if level is None or level < self.threshold:
            self._last_loud = now
        return self.speaking(now)

    def speaking(self, now: float) -> bool:
        return self._last_loud is not None and now - self._last_loud <= self.hangover
