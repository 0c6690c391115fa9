"""Who may enter a classroom, by its owner's subscription: the one gate for the documents
(``/ws/{C/...}``), the page's tokens (``/api/join/{code}``, ``/api/classrooms/{C}/token``)
and, later, the call (``sfu``: call :meth:`Admission.check` with ``video=True``).

The rules (billing's ``Access`` for the classroom's owner, see ``server/billing_gate.py``):

- Staff (the tutor, an admin) always get in: they see a banner saying what to fix.
- When the owner has no access, students and observers are refused
  (:class:`PaymentRequired`, close code 4402, HTTP 402), unless they are **in the lesson**:
  connected to the classroom now, or admitted less than ``lesson_gap`` seconds ago (a
  token renewal, a reconnect after a network blip or a token expiry). So access lost
  mid-lesson does not cut the lesson; only new joins are refused.
- A student beyond the plan's ``students_per_classroom`` is refused (:class:`ClassFull`,
  close code 4413, HTTP 409). Seats are counted per node, by student, over open
  connections: a student with a board and a class connection holds one seat.
- ``video=True`` (a call) also needs the plan's ``video`` entitlement
  (:class:`VideoNotIncluded`, close code 4402).

With billing off every classroom is free and only the rules above that need no billing
apply (nothing is refused).
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from prometheus_client import Counter

from billing.model import Access, Entitlements

from .accounts import Directory
from .auth import Role
from .billing_gate import FREE, BillingGate
from .errors import ServerError
from .web import run

log = logging.getLogger("inkroom.server.admission")

PAYMENT_REQUIRED_CODE = 4402
CLASS_FULL_CODE = 4413
STAFF_ROLES = frozenset({Role.TUTOR, Role.ADMIN})
LESSON_GAP = 600.0  # seconds: a participant who left less than this ago is still in the lesson
OWNER_TTL = 30.0  # seconds a classroom's owner is remembered
MAX_TRACKED = 100_000

REFUSALS = Counter(
    "inkroom_classroom_refusals_total",
    "Joins refused by the owner's subscription or the plan's class size",
    ["reason", "role"],
)


class PaymentRequired(ServerError):
    """The classroom's owner has no access (lapsed, canceled, no subscription...)."""

    close_code = PAYMENT_REQUIRED_CODE
    status_code = 402
    reason = "payment-required"


class ClassFull(ServerError):
    """The classroom already has as many students as the owner's plan allows."""

    close_code = CLASS_FULL_CODE
    status_code = 409
    reason = "class-full"


class VideoNotIncluded(ServerError):
    close_code = PAYMENT_REQUIRED_CODE
    status_code = 402
    reason = "video-not-included"


PAUSED = "This class is paused: the tutor's subscription needs attention. Ask your tutor."


def full_message(limit: int) -> str:
    students = f"{limit} student{'s' if limit != 1 else ''}"
    return f"This class is full: the tutor's plan allows {students} at a time. Ask your tutor."


@dataclass
class Seat:
    """A student's place in a classroom, held while one of their connections is open."""

    admission: Admission
    classroom: str
    user_id: str
    student: bool
    released: bool = field(default=False)

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.admission._leave(self)


class Admission:
    """The classroom gate of one node."""

    def __init__(
        self,
        billing: Callable[[], BillingGate | None],
        directory: Directory,
        *,
        lesson_gap: float = LESSON_GAP,
    ) -> None:
        self._billing = billing
        self.directory = directory
        self.lesson_gap = lesson_gap
        self._owners: OrderedDict[str, tuple[float, str | None]] = OrderedDict()
        # (classroom, user) -> monotonic time last admitted or seen leaving
        self._recent: OrderedDict[tuple[str, str], float] = OrderedDict()
        # classroom -> user -> open student connections
        self._seats: dict[str, dict[str, int]] = {}
        # classroom -> the entitlements it last had access with: a lesson that goes on after
        # access is lost keeps its plan's size (a lapsed account's entitlements are nothing)
        self._plans: OrderedDict[str, Entitlements] = OrderedDict()

    # -- the owner's access ----------------------------------------------------------------

    async def owner(self, classroom: str) -> str | None:
        """The billing account (``acct-N``) that owns the classroom, or ``None``."""
        at = time.monotonic()
        cached = self._owners.get(classroom)
        if cached is not None and cached[0] > at:
            return cached[1]
        account = await run(self.directory.owner_of, classroom)
        owner = account.user_id if account is not None else None
        self._owners[classroom] = (at + OWNER_TTL, owner)
        self._owners.move_to_end(classroom)
        while len(self._owners) > MAX_TRACKED:
            self._owners.popitem(last=False)
        return owner

    async def access(self, classroom: str, *, fresh: bool = False) -> Access:
        """The owner's access decision (``FREE`` with billing off).

        A classroom without an owner (made with ``inkroom token`` and never claimed) is run
        by the operator: it is free."""
        gate = self._billing()
        if gate is None or not gate.enabled:
            return FREE
        owner = await self.owner(classroom)
        if owner is None:
            return FREE
        access = await gate.access(owner, fresh=fresh)
        if access.has_access:
            self._plans[classroom] = access.entitlements
            self._plans.move_to_end(classroom)
            while len(self._plans) > MAX_TRACKED:
                self._plans.popitem(last=False)
        return access

    # -- the decision ----------------------------------------------------------------------

    def in_lesson(self, classroom: str, user_id: str) -> bool:
        if self._seats.get(classroom, {}).get(user_id):
            return True
        seen = self._recent.get((classroom, user_id))
        return seen is not None and time.monotonic() - seen < self.lesson_gap

    def seated(self, classroom: str) -> int:
        return sum(1 for n in self._seats.get(classroom, {}).values() if n > 0)

    async def check(
        self, classroom: str, user_id: str, role: Role, *, video: bool = False
    ) -> Access:
        """Raises :class:`PaymentRequired`, :class:`ClassFull` or :class:`VideoNotIncluded`
        if ``user_id`` may not enter now; reserves nothing (see :meth:`admit`)."""
        access = await self.access(classroom)
        self._judge(classroom, user_id, role, access, video=video)
        return access

    def _judge(
        self, classroom: str, user_id: str, role: Role, access: Access, *, video: bool
    ) -> None:
        try:
            self._rules(classroom, user_id, role, access, video=video)
        except (PaymentRequired, ClassFull, VideoNotIncluded) as exc:
            REFUSALS.labels(exc.reason, role.value).inc()
            log.info(
                "join refused: %s",
                exc.reason,
                extra={
                    "classroom": classroom,
                    "user": user_id,
                    "role": role.value,
                    "billing_state": access.state.value,
                    "billing_reason": access.reason,
                },
            )
            raise

    def _rules(
        self, classroom: str, user_id: str, role: Role, access: Access, *, video: bool
    ) -> None:
        if role in STAFF_ROLES:
            return
        if not access.has_access and not self.in_lesson(classroom, user_id):
            raise PaymentRequired(PAUSED)
        if video and not access.entitlements.video:
            raise VideoNotIncluded("video calls are not part of the tutor's plan")
        if role is Role.STUDENT and not self._seats.get(classroom, {}).get(user_id):
            # A seat freed by a leaver may be taken by another student: only a student who
            # holds one now passes when the class is full. Without access (a lesson going
            # on), the size is the plan's the classroom last had, if known.
            plan = access.entitlements if access.has_access else self._plans.get(classroom)
            limit = plan.students_per_classroom if plan is not None else None
            if limit is not None and self.seated(classroom) >= limit:
                raise ClassFull(full_message(limit))

    async def admit(self, classroom: str, user_id: str, role: Role) -> Seat:
        """Checks and takes a seat in one step (no await between them, so two students
        racing for the last seat cannot both get it). Release the seat on leaving."""
        access = await self.access(classroom)
        self._judge(classroom, user_id, role, access, video=False)
        student = role is Role.STUDENT
        if student:
            users = self._seats.setdefault(classroom, {})
            users[user_id] = users.get(user_id, 0) + 1
        self.seen(classroom, user_id)
        return Seat(self, classroom, user_id, student)

    def seen(self, classroom: str, user_id: str) -> None:
        """Notes that the user is taking part in the lesson (admitted, renewing, leaving)."""
        key = (classroom, user_id)
        self._recent[key] = time.monotonic()
        self._recent.move_to_end(key)
        while len(self._recent) > MAX_TRACKED:
            self._recent.popitem(last=False)

    def _leave(self, seat: Seat) -> None:
        if seat.student:
            users = self._seats.get(seat.classroom, {})
            left = users.get(seat.user_id, 0) - 1
            if left > 0:
                users[seat.user_id] = left
            else:
                users.pop(seat.user_id, None)
                if not users:
                    self._seats.pop(seat.classroom, None)
        self.seen(seat.classroom, seat.user_id)
