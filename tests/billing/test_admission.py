"""The classroom gate as a state machine (Hypothesis), on real parts: the billing service over
the in-memory ledger with the model of Stripe (``fake_stripe.World``) as its Stripe, the
server's ``BillingGate`` (with its cache) and ``Admission``, and a real ``Directory`` on
SQLite for the classroom's owner.

Students, observers and the tutor join (alone, or two students racing), leave, and the
tutor's subscription moves along Stripe's graph (a payment fails, dunning runs out, a payment
succeeds), each move delivered as Stripe's events to ``Billing.handle``. At every step:

- the plan's class size is never exceeded, and seats are exactly the students with an open
  connection;
- a refused join changes nothing;
- each join's outcome is the rule's: staff always in; no access refuses whoever is not in
  the lesson; a full class refuses a student without a seat.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from sqlalchemy import Engine

from billing.memory import MemoryRepo
from billing.model import AccountId, Plan
from billing.service import Billing
from server.accounts import Account, Directory
from server.admission import Admission, ClassFull, PaymentRequired, Seat
from server.auth import Role
from server.billing_gate import BillingGate
from server.db import make_engine, migrate
from server.settings import Settings

from .fake_stripe import PRICE, World, WorldStripe

LIMIT = 2
PLANS = {
    "solo": Plan(
        key="solo",
        stripe_price=PRICE,
        name="Small group",
        students_per_classroom=LIMIT,
        video=False,
        trial_days=0,
    )
}
STUDENTS = [f"s{i}" for i in range(5)]
_n = itertools.count()


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('admission') / 'inkroom.db'}")
    migrate(engine)
    yield engine
    engine.dispose()


class GateMachine(RuleBasedStateMachine):
    engine: Engine
    data_dir: Path
    account: Account  # one tutor (password hashing is slow), a new classroom per example

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        directory = Directory(self.engine)
        account = self.account
        self.classroom = directory.create_classroom(f"Gate {next(_n)}", account).id
        self.world = World(now=1_900_000_000)
        self.billing = Billing(
            MemoryRepo(), WorldStripe(self.world), PLANS, clock=lambda: self.world.now
        )
        customer = self.billing.ensure_customer(AccountId(account.user_id))
        self.sub = self.world.create(customer, "pay_ok")
        self._deliver()
        settings_ = Settings(data_dir=self.data_dir, secret="s" * 32)
        self.gate = self.loop.run_until_complete(self._make_gate(settings_))
        self.admission = Admission(lambda: self.gate, directory)
        self.seats: list[Seat] = []
        self.in_lesson: set[str] = set()  # the lesson gap (10 min) never runs out here
        self.delivered = len(self.world.events)

    async def _make_gate(self, settings_: Settings) -> BillingGate:
        return BillingGate(self.billing, settings_)  # anyio needs a running loop

    def teardown(self) -> None:
        self.loop.close()

    def _deliver(self) -> None:
        for event in self.world.events[getattr(self, "delivered", 0) :]:
            self.billing.handle(event)
        self.delivered = len(self.world.events)

    # -- the model ----------------------------------------------------------------------

    def has_access(self) -> bool:
        return self.world.subs[self.sub]["status"] in ("active", "past_due")

    def seated(self) -> Counter[str]:
        return Counter(s.user_id for s in self.seats if s.student)

    def expected(self, user: str, role: Role) -> type[Exception] | None:
        if role in (Role.TUTOR, Role.ADMIN):
            return None
        if not self.has_access() and user not in self.in_lesson:
            return PaymentRequired
        if role is Role.STUDENT and user not in self.seated() and len(self.seated()) >= LIMIT:
            return ClassFull
        return None

    def _admit(self, user: str, role: Role) -> None:
        want = self.expected(user, role)
        before = self.seated()
        try:
            seat = self.loop.run_until_complete(self.admission.admit(self.classroom, user, role))
        except (PaymentRequired, ClassFull) as exc:
            refused: type[Exception] | None = type(exc)
        else:
            refused = None
            self.seats.append(seat)
            self.in_lesson.add(user)
        assert refused is want, (user, role, refused, want)
        if refused is not None:
            assert self.seated() == before
            assert self.admission.seated(self.classroom) == len(before)

    # -- rules --------------------------------------------------------------------------

    @rule(user=st.sampled_from(STUDENTS))
    def student_joins(self, user: str) -> None:
        self._admit(user, Role.STUDENT)

    @rule(user=st.sampled_from(["o1", "o2"]))
    def observer_joins(self, user: str) -> None:
        self._admit(user, Role.OBSERVER)

    @rule()
    def tutor_joins(self) -> None:
        self._admit("acct-tutor", Role.TUTOR)

    @rule(pair=st.lists(st.sampled_from(STUDENTS), min_size=2, max_size=2, unique=True))
    def two_students_race(self, pair: list[str]) -> None:
        """Two joins at once: the seats taken never exceed the plan, whatever the order."""
        before = self.seated()

        async def both() -> list[Seat | BaseException]:
            return await asyncio.gather(
                *(self.admission.admit(self.classroom, u, Role.STUDENT) for u in pair),
                return_exceptions=True,
            )

        results = self.loop.run_until_complete(both())
        admitted = [r for r in results if isinstance(r, Seat)]
        for r in results:
            assert isinstance(r, (Seat, PaymentRequired, ClassFull)), r
        self.seats += admitted
        self.in_lesson |= {s.user_id for s in admitted}
        new = {s.user_id for s in admitted} - set(before)
        assert len(before) + len(new) <= LIMIT

    @precondition(lambda self: bool(self.seats))
    @rule(data=st.data())
    def someone_leaves(self, data: st.DataObject) -> None:
        seat = self.seats.pop(data.draw(st.integers(0, len(self.seats) - 1)))
        seat.release()
        seat.release()  # twice is once

    def _step(self, to: str) -> None:
        self.world.advance(60)
        assert self.world.step(self.sub, to)
        self._deliver()
        self.gate.invalidate()  # as the webhook endpoint does (``wake``)

    @precondition(lambda self: self.world.subs[self.sub]["status"] == "active")
    @rule()
    def a_payment_fails(self) -> None:
        self._step("past_due")  # grace: still open

    @precondition(lambda self: self.world.subs[self.sub]["status"] == "past_due")
    @rule()
    def dunning_runs_out(self) -> None:
        self._step("unpaid")  # lapsed

    @precondition(lambda self: self.world.subs[self.sub]["status"] in ("past_due", "unpaid"))
    @rule()
    def a_payment_succeeds(self) -> None:
        self._step("active")

    # -- invariants ---------------------------------------------------------------------

    @invariant()
    def seats_match_open_connections_and_the_plan(self) -> None:
        seated = self.seated()
        assert self.admission.seated(self.classroom) == len(seated) <= LIMIT
        for user in STUDENTS:
            assert bool(self.admission._seats.get(self.classroom, {}).get(user)) == (user in seated)

    @invariant()
    def the_gate_agrees_with_the_subscription(self) -> None:
        access = self.loop.run_until_complete(self.admission.access(self.classroom))
        assert access.has_access == self.has_access()


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_the_classroom_gate(engine: Engine, tmp_path: Path) -> None:
    GateMachine.engine = engine
    GateMachine.account = Directory(engine).create_account(
        "gate@example.org", "a long password", role="tutor"
    )
    GateMachine.data_dir = tmp_path
    run = GateMachine.TestCase
    run.settings = settings(
        max_examples=100,
        stateful_step_count=30,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    run().runTest()


def test_the_lesson_pass_runs_out_after_the_gap(engine: Engine, tmp_path: Path) -> None:
    """A student who left a lesson longer than ``lesson_gap`` ago is a new join again: with
    the owner lapsed, refused."""
    GateMachine.engine = engine
    GateMachine.data_dir = tmp_path
    GateMachine.account = Directory(engine).create_account(
        "gap@example.org", "a long password", role="tutor"
    )
    machine = GateMachine()
    try:
        machine.admission.lesson_gap = 0.2
        machine.student_joins("s0")
        machine.a_payment_fails()
        machine.dunning_runs_out()  # lapsed, mid-lesson
        seat = machine.seats.pop()
        seat.release()
        # Back within the gap (a reconnect): still in the lesson.
        again = machine.loop.run_until_complete(
            machine.admission.admit(machine.classroom, "s0", Role.STUDENT)
        )
        again.release()
        machine.loop.run_until_complete(asyncio.sleep(0.3))
        with pytest.raises(PaymentRequired):
            machine.loop.run_until_complete(
                machine.admission.admit(machine.classroom, "s0", Role.STUDENT)
            )
    finally:
        machine.teardown()
