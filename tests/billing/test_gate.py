"""The classroom gate (``server/admission.py``) through the real app and a live server.

The tutor's billing state is reached through the real code path: the tutor subscribes
through ``POST /api/billing/checkout`` and the stand-in's Checkout page, the stand-in for
Stripe's API (``world_http``, the model behind the stripe SDK) moves the subscription along
Stripe's status graph and delivers each event to the webhook, signed with the test secret.
Nothing is written to the billing tables directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx2 as httpx
import websockets

from collab.protocol import PermissionDenied, SyncStep1, decode
from server.auth import Role, issue
from server.settings import Settings
from tests.server.live import live_server

from .stripe_setup import WEBHOOK_SECRET
from .world_http import StandIn, world_server

SECRET = "billing-gate-secret-" + "cd" * 32
PASSWORD = "a long tutor password"
PLANS = json.dumps(
    [
        {
            "key": "solo",
            "stripe_price": "price_solo",  # the model's price (fake_stripe.PRICE)
            "name": "Solo",
            "students_per_classroom": 1,
            "video": False,
            "trial_days": 14,
        }
    ]
)


@dataclass
class Lesson:
    base: str
    ws: str
    standin: StandIn
    tutor: httpx.Client
    account: str
    classroom: str
    invite: str

    def step(self, *path: str) -> None:
        """Moves the tutor's subscription (Stripe's status graph), delivering the events."""
        with self.standin.lock:
            customer = self.standin.customer_of(self.account)
            assert customer is not None
        self.standin.step(customer, list(path))
        self.standin.deliver()

    def student(self) -> httpx.Client:
        return httpx.Client(base_url=self.base, headers={"origin": self.base}, timeout=30)

    def billing(self) -> dict[str, object]:
        r = self.tutor.get(f"/api/classrooms/{self.classroom}/billing")
        assert r.status_code == 200, r.text
        body: dict[str, object] = r.json()
        return body


@contextlib.contextmanager
def lesson(tmp: Path, *, subscribe: bool = True) -> Iterator[Lesson]:
    """A live server with billing on, a signed-up tutor with a classroom and an invite, and
    (``subscribe``) a subscription started through Checkout (a trial of the Solo plan: one
    student per classroom)."""
    with world_server() as standin:
        settings = Settings(
            data_dir=tmp,
            secret=SECRET,
            stripe_api_key="sk_test_gate",
            stripe_api_base=standin.base,
            stripe_webhook_secrets=WEBHOOK_SECRET,
            billing_plans=PLANS,
            billing_outbox_interval=0.2,
        )
        with live_server(settings) as ws:
            base = ws.replace("ws://", "http://")
            standin.webhook_url = base + "/billing/stripe/webhook"
            standin.secret = WEBHOOK_SECRET
            with httpx.Client(base_url=base, headers={"origin": base}, timeout=30) as tutor:
                r = tutor.post(
                    "/api/auth/signup",
                    json={"email": "t@example.org", "password": PASSWORD, "name": "Tess"},
                )
                assert r.status_code == 201, r.text
                account = f"acct-{r.json()['account']['id']}"
                cid = tutor.post("/api/classrooms", json={"title": "Algebra"}).json()["id"]
                code = tutor.post(f"/api/classrooms/{cid}/invites", json={}).json()["code"]
                if subscribe:
                    r = tutor.post("/api/billing/checkout", json={"plan": "solo"})
                    assert r.status_code == 200, r.text
                    # The tutor enters a card on the (stand-in's) Checkout page.
                    done = httpx.get(r.json()["url"], follow_redirects=False, timeout=30)
                    assert done.status_code == 303
                yield Lesson(base, ws, standin, tutor, account, cid, code)


async def _close_of(ws: websockets.ClientConnection, wait: float = 10) -> tuple[int | None, str]:
    async with asyncio.timeout(wait):
        try:
            async for _ in ws:
                pass
        except websockets.ConnectionClosed:
            pass
    return ws.close_code, ws.close_reason or ""


async def _refused(url: str) -> tuple[int | None, str]:
    async with websockets.connect(url) as ws:
        first = await asyncio.wait_for(ws.recv(), 10)
        assert isinstance(decode(first), PermissionDenied)  # type: ignore[arg-type]
        return await _close_of(ws)


def _join(student: httpx.Client, code: str, name: str) -> httpx.Response:
    return student.post(f"/api/join/{code}", json={"name": name})


def test_a_lapsed_owners_classroom_refuses_students_with_4402(tmp_path: Path) -> None:
    with lesson(tmp_path) as ls:
        ls.step("paused")  # the trial ended without a card: lapsed
        info = ls.tutor.get("/api/billing/account").json()
        assert info["state"] == "lapsed"
        assert info["status"] == "Trial ended without a card: add one to reopen your classrooms"
        with ls.student() as student:
            r = student.get(f"/api/join/{ls.invite}")
            assert r.status_code == 402
            assert r.json()["reason"] == "payment-required"
            assert "This class is paused" in r.json()["error"]
            r = _join(student, ls.invite, "Sam")
            assert (r.status_code, r.json()["reason"]) == (402, "payment-required")
        metrics = httpx.get(ls.base + "/metrics", timeout=30).text
        assert 'inkroom_classroom_refusals_total{reason="payment-required",role="student"}' in (
            metrics
        )
        # The refused student did not use the invite up.
        invites = ls.tutor.get(f"/api/classrooms/{ls.classroom}/invites").json()["invites"]
        assert invites[0]["uses"] == 0
        # The tutor still gets in, and is told what to fix.
        tutor_token = ls.tutor.post(f"/api/classrooms/{ls.classroom}/token").json()["token"]
        banner = ls.billing()
        assert banner["has_access"] is False
        assert banner["banner"] == info["status"]
        # A student's token minted some other way (a CLI link) is refused at the socket too.
        token = issue(SECRET, classroom=ls.classroom, role=Role.STUDENT, user_id="s-cli")
        code, reason = asyncio.run(_refused(f"{ls.ws}/ws/{ls.classroom}/board?token={token}"))
        assert (code, reason) == (
            4402,
            "This class is paused: the tutor's subscription needs attention. Ask your tutor.",
        )

        async def tutor_in() -> None:
            async with websockets.connect(
                f"{ls.ws}/ws/{ls.classroom}/board?token={tutor_token}"
            ) as ws:
                assert isinstance(decode(await ws.recv()), SyncStep1)  # type: ignore[arg-type]

        asyncio.run(tutor_in())


def test_grace_lets_students_in_and_shows_the_tutor_a_banner(tmp_path: Path) -> None:
    with lesson(tmp_path) as ls:
        ls.step("active", "past_due")  # a renewal payment failed: grace
        info = ls.tutor.get("/api/billing/account").json()
        assert (info["state"], info["has_access"]) == ("grace", True)
        assert info["status"].startswith("Payment failed: update your card by ")
        assert ls.billing()["banner"] == info["status"]
        with ls.student() as student:
            r = _join(student, ls.invite, "Sam")
            assert r.status_code == 200, r.text
            token = r.json()["token"]

        async def student_in() -> None:
            async with websockets.connect(f"{ls.ws}/ws/{ls.classroom}/board?token={token}") as ws:
                assert isinstance(decode(await ws.recv()), SyncStep1)  # type: ignore[arg-type]

        asyncio.run(student_in())


def test_a_student_over_the_plans_class_size_is_refused_with_its_message(
    tmp_path: Path,
) -> None:
    with lesson(tmp_path) as ls, ls.student() as first, ls.student() as second:
        one = _join(first, ls.invite, "Ann").json()["token"]
        two = _join(second, ls.invite, "Bob").json()["token"]  # nobody is connected yet

        async def scenario() -> None:
            async with (
                websockets.connect(f"{ls.ws}/ws/{ls.classroom}/board?token={one}") as board,
                websockets.connect(f"{ls.ws}/ws/{ls.classroom}/class?token={one}") as cls,
            ):
                await board.recv()
                await cls.recv()
                # One student holds the only seat (with two connections): the next is refused.
                code, reason = await _refused(f"{ls.ws}/ws/{ls.classroom}/board?token={two}")
                assert code == 4413
                assert reason == (
                    "This class is full: the tutor's plan allows 1 student at a time. "
                    "Ask your tutor."
                )
                r = await asyncio.to_thread(second.post, f"/api/classrooms/{ls.classroom}/token")
                assert (r.status_code, r.json()["reason"]) == (409, "class-full")
                # The seated student renews and reconnects as usual.
                r = await asyncio.to_thread(first.post, f"/api/classrooms/{ls.classroom}/token")
                assert r.status_code == 200

            # The seat is free again once the first student has left.
            async def admitted() -> bool:
                async with websockets.connect(f"{ls.ws}/ws/{ls.classroom}/board?token={two}") as ws:
                    return isinstance(decode(await ws.recv()), SyncStep1)  # type: ignore[arg-type]

            deadline = asyncio.get_running_loop().time() + 10
            while not await admitted():
                assert asyncio.get_running_loop().time() < deadline
                await asyncio.sleep(0.05)

        asyncio.run(scenario())


def test_access_lost_mid_lesson_keeps_the_lesson_and_refuses_new_joins(tmp_path: Path) -> None:
    with lesson(tmp_path) as ls, ls.student() as student, ls.student() as late:
        r = _join(student, ls.invite, "Sam")
        token = r.json()["token"]
        tutor_token = ls.tutor.post(f"/api/classrooms/{ls.classroom}/token").json()["token"]

        async def scenario() -> None:
            async with (
                websockets.connect(f"{ls.ws}/ws/{ls.classroom}/board?token={token}") as board,
                websockets.connect(f"{ls.ws}/ws/{ls.classroom}/board?token={tutor_token}") as t,
            ):
                await board.recv()
                await t.recv()
                assert ls.billing()["banner"] is None
                # The card is declined, and dunning runs out: lapsed, mid-lesson.
                await asyncio.to_thread(ls.step, "past_due", "unpaid")
                banner = await asyncio.to_thread(ls.billing)
                assert banner["has_access"] is False
                assert banner["banner"] == (
                    "Payment failed: update your card to reopen your classrooms"
                )
                # New joins are refused...
                r = await asyncio.to_thread(_join, late, ls.invite, "Late")
                assert (r.status_code, r.json()["reason"]) == (402, "payment-required")
                # ...but the lesson goes on: the open connection still syncs, the student
                # renews the page's token and opens the class document.
                await board.send(bytes(SyncStep1(b"\x00")))
                assert await asyncio.wait_for(board.recv(), 10)
                r = await asyncio.to_thread(student.post, f"/api/classrooms/{ls.classroom}/token")
                assert r.status_code == 200, r.text
                fresh = r.json()["token"]
                async with websockets.connect(
                    f"{ls.ws}/ws/{ls.classroom}/class?token={fresh}"
                ) as cls:
                    assert isinstance(decode(await cls.recv()), SyncStep1)  # type: ignore[arg-type]
                assert board.close_code is None

        asyncio.run(scenario())


def test_webhooks_drop_the_cached_access_decision(tmp_path: Path) -> None:
    """Joins read a per-owner cache (a few seconds); a webhook that changes the state drops
    it, so the next join sees the change at once."""
    with lesson(tmp_path) as ls, ls.student() as student:
        assert student.get(f"/api/join/{ls.invite}").status_code == 200  # cached: trialing
        ls.step("paused")
        assert student.get(f"/api/join/{ls.invite}").status_code == 402
        ls.step("active")
        assert student.get(f"/api/join/{ls.invite}").status_code == 200


def test_without_a_subscription_students_are_refused(tmp_path: Path) -> None:
    with lesson(tmp_path, subscribe=False) as ls, ls.student() as student:
        r = student.get(f"/api/join/{ls.invite}")
        assert (r.status_code, r.json()["reason"]) == (402, "payment-required")
        info = ls.tutor.get("/api/billing/account").json()
        assert info["status"] == "No subscription: start one to open your classrooms"
        assert (info["can_subscribe"], info["can_manage"]) == (True, False)
