"""The billing port of the server: one access decision per account, and billing's lifespan.

``BillingGate.access(account_id)`` is the only question the rest of the server asks (classroom
joins, calls): it answers ``Access(has_access, entitlements, reason, banner, student_message)``.
Without ``INKROOM_STRIPE_API_KEY`` billing is off and every account has unlimited access.

The lifespan owns a task group: the outbox worker (every Stripe side effect) and the
reconciler (at start and every ``billing_reconcile_interval``, one node at a time), which also
moves grace periods on with the clock.
"""

from __future__ import annotations

import json
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from sqlalchemy import Engine

from billing.adapters.sql_repo import SqlBillingRepo
from billing.adapters.stripe_gateway import StripeGateway
from billing.derive import DAY
from billing.model import UNLIMITED, Access, AccountId, Plan
from billing.service import Billing
from billing.states import State

from .settings import Settings

log = logging.getLogger("inkroom.billing")

# Placeholders: set INKROOM_BILLING_PLANS to your Stripe price ids.
DEFAULT_PLANS = [
    {
        "key": "solo",
        "stripe_price": "price_solo",
        "name": "Solo",
        "students_per_classroom": 1,
        "video": True,
        "trial_days": 14,
    },
    {
        "key": "group",
        "stripe_price": "price_group",
        "name": "Group",
        "students_per_classroom": 30,
        "video": True,
        "trial_days": 14,
    },
]
FREE = Access(True, State.NONE, UNLIMITED, "billing_off", None, None, "free")
# Joins ask for the owner's access on every connection: answers are kept this long (seconds)
# and dropped at once when a webhook, a reconciliation or the clock tick may have changed them.
ACCESS_TTL = 5.0
MAX_CACHED = 10_000


def plans_from(settings: Settings) -> dict[str, Plan]:
    """``INKROOM_BILLING_PLANS``: a JSON list of ``{key, stripe_price, name,
    students_per_classroom, video, trial_days}``."""
    raw = json.loads(settings.billing_plans) if settings.billing_plans else DEFAULT_PLANS
    plans = [Plan(**p) for p in raw]
    return {p.key: p for p in plans}


class BillingGate:
    def __init__(self, billing: Billing | None, settings: Settings) -> None:
        self.billing = billing
        self.settings = settings
        self._wake = anyio.Event()
        self._cache: OrderedDict[str, tuple[float, Access]] = OrderedDict()
        self.ttl = ACCESS_TTL

    @property
    def enabled(self) -> bool:
        return self.billing is not None

    @property
    def webhook_secrets(self) -> list[str]:
        raw = self.settings.stripe_webhook_secrets or ""
        return [s.strip() for s in raw.split(",") if s.strip()]

    def access_now(self, account: str) -> Access:
        """Blocking form (runs a small SQL read)."""
        if self.billing is None:
            return FREE
        return self.billing.access(AccountId(account))

    async def access(self, account: str, *, fresh: bool = False) -> Access:
        """The access decision for the account that owns a classroom.

        Cached per account for ``ttl`` seconds (a join asks on every connection); ``fresh``
        reads through. Webhooks, reconciliation and the clock tick drop the cache."""
        if self.billing is None:
            return FREE
        at = time.monotonic()
        cached = self._cache.get(account)
        if not fresh and cached is not None and cached[0] > at:
            return cached[1]
        answer = await anyio.to_thread.run_sync(self.access_now, account)
        self._cache[account] = (at + self.ttl, answer)
        self._cache.move_to_end(account)
        while len(self._cache) > MAX_CACHED:
            self._cache.popitem(last=False)
        return answer

    def invalidate(self) -> None:
        """Drops every cached decision (a state may have changed)."""
        self._cache.clear()

    def wake(self) -> None:
        """Asks the outbox worker to drain now (after a webhook or a command); cached access
        decisions are dropped, since the state may have changed."""
        self.invalidate()
        self._wake.set()

    async def _outbox_worker(self, billing: Billing) -> None:
        while True:
            try:
                await anyio.to_thread.run_sync(billing.drain)
            except Exception:
                log.exception("billing outbox drain failed")
            with anyio.move_on_after(self.settings.billing_outbox_interval):
                await self._wake.wait()
            self._wake = anyio.Event()

    async def _reconciler(self, billing: Billing) -> None:
        """Reconciles at start and every interval (the lease keeps it to one node); between
        runs, a tick each minute lets grace periods run out on time."""
        interval = self.settings.billing_reconcile_interval
        last: float | None = None
        while True:
            if last is None or anyio.current_time() - last >= interval:
                last = anyio.current_time()
                try:
                    lease = max(1, int(interval) - 1)
                    if await anyio.to_thread.run_sync(billing.reconcile_if_leader, lease):
                        log.info("billing reconciled")
                        self.wake()
                except Exception:
                    log.exception("billing reconciliation failed")
            try:
                await anyio.to_thread.run_sync(billing.tick)
            except Exception:
                log.exception("billing tick failed")
            self.invalidate()
            await anyio.sleep(min(interval, 60.0))


@asynccontextmanager
async def billing_lifespan(settings: Settings, engine: Engine) -> AsyncIterator[BillingGate]:
    if not settings.stripe_api_key:
        log.info("billing off: no INKROOM_STRIPE_API_KEY, every classroom is free")
        yield BillingGate(None, settings)
        return
    repo = SqlBillingRepo(engine)
    gateway = StripeGateway(settings.stripe_api_key, settings.stripe_api_base)
    billing = Billing(
        repo, gateway, plans_from(settings), grace=int(settings.billing_grace_days * DAY)
    )
    gate = BillingGate(billing, settings)
    if not gate.webhook_secrets:
        log.warning("billing on but INKROOM_STRIPE_WEBHOOK_SECRETS is empty: webhooks refused")
    log.info(
        "billing on",
        extra={"plans": ",".join(billing.plans), "api_base": settings.stripe_api_base or "stripe"},
    )
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(gate._outbox_worker, billing)
            tg.start_soon(gate._reconciler, billing)
            try:
                yield gate
            finally:
                tg.cancel_scope.cancel()
    finally:
        repo.dispose()
