"""The billing service: webhooks as triggers, re-fetch under a per-customer lock, derive, record.

Blocking (the Stripe SDK and the SQL ledger are synchronous): the server calls it in threads.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum

from .derive import (
    DEFAULT_GRACE,
    SubView,
    decide_access,
    derive,
    duplicates,
    primary,
    trial_eligible,
)
from .events import Event, trigger_of
from .metrics import DUPLICATE_LIVE, EFFECTS, EVENTS
from .model import Access, AccountId, DisputeFact, Plan, RefundFact, Snapshot
from .ports import BillingRepo, BillingTx, Effect, Intent, StoredSub, StripePort, Transition
from .states import LIVE, State, advance

log = logging.getLogger("inkroom.billing")

# A double click within this window reuses the intent, so Stripe answers with the same session
# (Stripe keeps idempotency keys for at least 24 hours).
INTENT_REUSE_WINDOW = 3600


class Outcome(StrEnum):
    PROCESSED = "processed"
    DUPLICATE = "duplicate"


class BillingError(Exception):
    """A request that billing refuses (the message is for the user)."""


class AlreadySubscribed(BillingError):
    pass


class UnknownPlan(BillingError):
    pass


@dataclass(frozen=True, slots=True)
class Cause:
    reason: str
    event_id: str | None = None
    event_type: str | None = None
    request_id: str | None = None
    idempotency_key: str | None = None

    @classmethod
    def of(cls, event: Event) -> Cause:
        return cls(
            reason=f"webhook {event.type}",
            event_id=event.id,
            event_type=event.type,
            request_id=event.request_id,
            idempotency_key=event.idempotency_key,
        )


def params_hash(params: Mapping[str, object]) -> str:
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:32]


class Billing:
    def __init__(
        self,
        repo: BillingRepo,
        stripe: StripePort,
        plans: Mapping[str, Plan],
        *,
        grace: int = DEFAULT_GRACE,
        clock: Callable[[], float] = time.time,
        node: str | None = None,
    ) -> None:
        self.repo = repo
        self.stripe = stripe
        self.plans = dict(plans)
        self.grace = grace
        self.clock = clock
        self.node = node or uuid.uuid4().hex[:12]
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        # Test hook: called with the effect just before its Stripe call (crash tests).
        self.before_call: Callable[[Effect], None] | None = None

    def now(self) -> int:
        return int(self.clock())

    @contextmanager
    def _customer_lock(self, customer: str) -> Iterator[None]:
        """In-process half of the per-customer lock (the ledger's ``lock_customer`` is the
        cross-node half). Taken before the transaction begins, so no thread waits on the
        database while holding it... and none holds the database while waiting on it."""
        with self._guard:
            lock = self._locks.setdefault(customer, threading.Lock())
        with lock:
            yield

    # --- webhooks -------------------------------------------------------------------------

    def handle(self, event: Event) -> Outcome:
        """Processes one verified event exactly once (a duplicate is a no-op)."""
        trigger = trigger_of(event)
        refunds: list[RefundFact] = []
        disputes: list[DisputeFact] = []
        customer = trigger.customer
        if trigger.refund:
            refund = self.stripe.fetch_refund(trigger.refund)
            refunds += [refund] if refund else []
        if trigger.charge and not trigger.refund:
            refunds += self.stripe.refunds_of_charge(trigger.charge)
        if trigger.dispute:
            dispute = self.stripe.fetch_dispute(trigger.dispute)
            disputes += [dispute] if dispute else []
        for known in [*(r.customer for r in refunds), *(d.customer for d in disputes)]:
            customer = customer or known or None
        if customer is None and trigger.subscription:
            snap = self.stripe.fetch_subscription(trigger.subscription)
            customer = snap.customer if snap else None
        with self._customer_lock(customer or ""), self.repo.transaction() as tx:
            now = self.now()
            if not tx.record_event(event, customer, now):
                EVENTS.labels("duplicate").inc()
                return Outcome.DUPLICATE
            EVENTS.labels("processed").inc()
            if customer is None:
                log.info(
                    "billing event stored, no customer to refresh",
                    extra={"event_id": event.id, "event_type": event.type},
                )
                return Outcome.PROCESSED
            tx.lock_customer(customer)
            account = AccountId(trigger.account) if trigger.account else None
            tx.link_customer(customer, account, now)
            for refund in refunds:
                tx.add_refund(refund, now)
            for dispute in disputes:
                tx.add_dispute(dispute, now)
            self._refresh(tx, customer, Cause.of(event))
        return Outcome.PROCESSED

    def _refresh(self, tx: BillingTx, customer: str, cause: Cause) -> None:
        """Re-fetches every subscription of the customer (inside the lock) and re-derives."""
        seen: set[str] = set()
        for snap in self.stripe.list_subscriptions(customer=customer):
            if snap.customer != customer:
                continue
            seen.add(snap.id)
            self._apply(tx, snap, cause)
        for stored in tx.subs_of(customer):
            if stored.snapshot.id not in seen:
                fetched = self.stripe.fetch_subscription(stored.snapshot.id)
                self._apply(tx, fetched or stored.snapshot, cause)

    def _apply(self, tx: BillingTx, snap: Snapshot, cause: Cause) -> State:
        now = self.now()
        stored = tx.get_sub(snap.id)
        before = stored.state if stored else State.NONE
        facts = tx.facts(snap.id)
        derived = derive(snap, facts, now, self.grace)
        own = bool(cause.idempotency_key) and tx.get_intent(cause.idempotency_key or "") is not None
        after, refused = advance(before, derived, own_intent=own, subject=snap.id)
        tx.put_sub(StoredSub(snap, after), now)
        if derived != before:
            self._record(tx, snap, before, derived, refused, cause, now)
        if after in (State.REFUNDED, State.REVOKED) and snap.stripe_live:
            self._enqueue(tx, "cancel", snap.id, snap.customer, {}, now, f"{after.value}: end it")
        return after

    def _record(
        self,
        tx: BillingTx,
        snap: Snapshot,
        before: State,
        to: State,
        refused: bool,
        cause: Cause,
        now: int,
    ) -> None:
        tx.append_transition(
            Transition(
                subscription=snap.id,
                customer=snap.customer,
                from_state=before,
                to_state=to,
                forbidden=refused,
                stripe_status=snap.status,
                reason=cause.reason,
                at=now,
                event_id=cause.event_id,
                event_type=cause.event_type,
                request_id=cause.request_id,
                idempotency_key=cause.idempotency_key,
            )
        )
        log.log(
            logging.WARNING if refused else logging.INFO,
            "billing transition",
            extra={
                "event_id": cause.event_id,
                "event_type": cause.event_type,
                "stripe_request_id": cause.request_id,
                "idempotency_key": cause.idempotency_key,
                "subscription": snap.id,
                "customer": snap.customer,
                "from": before.value,
                "to": to.value,
                "stripe_status": snap.status,
                "forbidden": refused,
                "reason": cause.reason,
            },
        )

    # --- the clock and reconciliation ------------------------------------------------------

    def tick(self) -> None:
        """Re-derives stored subscriptions with the clock (grace running out), no Stripe call."""
        with self.repo.transaction() as tx:
            customers = tx.customers()
        for customer in customers:
            with self._customer_lock(customer), self.repo.transaction() as tx:
                tx.lock_customer(customer)
                for stored in tx.subs_of(customer):
                    if stored.state in LIVE:
                        self._apply(tx, stored.snapshot, Cause("clock"))

    def reconcile(self) -> None:
        """Discovers every subscription (not only known ones), re-pulls refunds and disputes,
        re-derives, then cancels duplicate live subscriptions. Covers any lost event."""
        snaps = self.stripe.list_subscriptions()
        refunds = self.stripe.list_refunds()
        disputes = self.stripe.list_disputes()
        with self.repo.transaction() as tx:
            known = tx.customers()
        customers = sorted(
            {s.customer for s in snaps}
            | {r.customer for r in refunds}
            | {d.customer for d in disputes}
            | set(known)
        )
        cause = Cause("reconcile")
        for customer in customers:
            with self._customer_lock(customer), self.repo.transaction() as tx:
                now = self.now()
                tx.lock_customer(customer)
                tx.link_customer(customer, None, now)
                for refund in refunds:
                    if refund.customer == customer:
                        tx.add_refund(refund, now)
                for dispute in disputes:
                    if dispute.customer == customer:
                        tx.add_dispute(dispute, now)
                self._refresh(tx, customer, cause)
        self.resolve_duplicates()

    def resolve_duplicates(self) -> None:
        """At most one live subscription per customer: the extra ones are canceled (keyed by
        effect, so the reconciler on several nodes or twice in a row asks once)."""
        with self.repo.transaction() as tx:
            customers = tx.customers()
        for customer in customers:
            with self._customer_lock(customer), self.repo.transaction() as tx:
                tx.lock_customer(customer)
                now = self.now()
                for extra in duplicates(self._views(tx, customer)):
                    snap = extra.snapshot
                    if self._enqueue(tx, "cancel", snap.id, customer, {}, now, "duplicate live"):
                        DUPLICATE_LIVE.inc()

    def reconcile_if_leader(self, ttl: int) -> bool:
        """Runs :meth:`reconcile` if this node takes the lease (one node at a time)."""
        with self.repo.transaction() as tx:
            if not tx.take_lease("reconcile", self.node, self.now(), ttl):
                return False
        self.reconcile()
        return True

    # --- the outbox ------------------------------------------------------------------------

    def _enqueue(
        self,
        tx: BillingTx,
        action: str,
        target: str,
        customer: str | None,
        params: Mapping[str, object],
        now: int,
        reason: str,
    ) -> bool:
        key = f"{action}:{target}"
        body = json.dumps({"target": target, **params}, sort_keys=True)
        intent = Intent(
            id=str(uuid.uuid4()),
            kind=action,
            customer=customer,
            account=None,
            params_hash=params_hash({"key": key, **params}),
            params=body,
            status="open",
            created_at=now,
        )
        effect = Effect(key, action, target, intent.id, "pending", 0, body)
        added = tx.enqueue(effect, intent)
        if added:
            log.info(
                "billing effect queued",
                extra={"key": key, "idempotency_key": intent.id, "reason": reason},
            )
        return added

    def drain(self, limit: int = 50, lease: int = 60) -> int:
        """Executes pending effects; each call carries its intent id as the Idempotency-Key."""
        with self.repo.transaction() as tx:
            claimed = tx.claim_effects(self.now(), lease, limit)
        for effect in claimed:
            try:
                result = self._execute(effect)
            except Exception as exc:
                EFFECTS.labels(effect.action, "error").inc()
                log.warning(
                    "billing effect failed, will retry",
                    extra={"key": effect.key, "error": f"{type(exc).__name__}: {exc}"},
                )
                with self.repo.transaction() as tx:
                    tx.finish_effect(effect.key, "pending", self.now(), f"{type(exc).__name__}")
                continue
            EFFECTS.labels(effect.action, "done").inc()
            with self.repo.transaction() as tx:
                now = self.now()
                tx.finish_effect(effect.key, "done", now, None)
                tx.update_intent(effect.intent_id, "sent", now, effect.target, result)
            log.info(
                "billing effect done",
                extra={"key": effect.key, "idempotency_key": effect.intent_id, "result": result},
            )
        return len(claimed)

    def _execute(self, effect: Effect) -> str:
        if effect.action == "cancel":
            snap = self.stripe.fetch_subscription(effect.target)
            # A key older than Stripe's 24 h is no protection: look before calling again.
            if snap is None or not snap.stripe_live:
                return "already ended"
            if self.before_call:
                self.before_call(effect)
            return self.stripe.cancel_subscription(effect.target, idempotency_key=effect.intent_id)
        if effect.action == "refund":
            params = json.loads(effect.params)
            if self.before_call:
                self.before_call(effect)
            return self.stripe.refund_charge(
                effect.target,
                subscription=str(params["subscription"]),
                ends_subscription=True,
                idempotency_key=effect.intent_id,
            )
        raise ValueError(f"unknown effect {effect.action}")

    # --- commands ------------------------------------------------------------------------

    def request_cancel(self, subscription: str) -> bool:
        snap = self.stripe.fetch_subscription(subscription)
        customer = snap.customer if snap else ""
        with self._customer_lock(customer), self.repo.transaction() as tx:
            return self._enqueue(tx, "cancel", subscription, customer, {}, self.now(), "requested")

    def refund_and_end(self, subscription: str, charge: str) -> None:
        """Support's full refund that ends the subscription: the fact is ours at once (never
        "in flight"), the refund and the cancel go through the outbox."""
        snap = self.stripe.fetch_subscription(subscription)
        if snap is None:
            raise BillingError("no such subscription")
        with self._customer_lock(snap.customer), self.repo.transaction() as tx:
            now = self.now()
            tx.lock_customer(snap.customer)
            tx.add_refund(RefundFact(f"local:{charge}", subscription, snap.customer, True), now)
            self._enqueue(
                tx, "refund", charge, snap.customer, {"subscription": subscription}, now, "support"
            )
            self._refresh(tx, snap.customer, Cause("support refund"))

    def _open_intent(
        self, kind: str, customer: str | None, account: str | None, params: Mapping[str, object]
    ) -> Intent:
        digest = params_hash({"kind": kind, **params})
        with self.repo.transaction() as tx:
            now = self.now()
            found = tx.recent_intent(kind, digest, now - INTENT_REUSE_WINDOW)
            if found is not None:
                return found
            intent = Intent(
                id=str(uuid.uuid4()),
                kind=kind,
                customer=customer,
                account=account,
                params_hash=digest,
                params=json.dumps(dict(params), sort_keys=True),
                status="open",
                created_at=now,
            )
            tx.add_intent(intent)
            return intent

    def _sent(self, intent: Intent, stripe_object: str) -> None:
        with self.repo.transaction() as tx:
            tx.update_intent(intent.id, "sent", self.now(), stripe_object, None)

    def ensure_customer(self, account: AccountId, email: str | None = None) -> str:
        with self.repo.transaction() as tx:
            existing = tx.customer_of(account)
        if existing:
            return existing
        intent = self._open_intent("customer", None, account, {"account": account})
        customer = self.stripe.create_customer(account, email, idempotency_key=intent.id)
        with self.repo.transaction() as tx:
            tx.link_customer(customer, account, self.now())
            tx.update_intent(intent.id, "sent", self.now(), customer, None)
        return customer

    def _plan(self, key: str) -> Plan:
        plan = self.plans.get(key)
        if plan is None:
            raise UnknownPlan(f"unknown plan {key!r}")
        return plan

    def _guard_new_subscription(self, customer: str) -> tuple[bool, list[str]]:
        """Refreshes the customer; refuses if a live subscription exists. Returns whether a
        trial is due (a returning customer gets none) and the subscriptions it already had:
        they go into the intent's parameters, so a double click reuses the intent (and its
        Idempotency-Key) while a customer coming back later gets a new one."""
        with self._customer_lock(customer), self.repo.transaction() as tx:
            tx.lock_customer(customer)
            self._refresh(tx, customer, Cause("before new subscription"))
            views = self._views(tx, customer)
        if any(v.state in LIVE for v in views):
            raise AlreadySubscribed(
                "a subscription is already live: manage it from the billing portal"
            )
        return trial_eligible(views), sorted(v.snapshot.id for v in views)

    def start_checkout(
        self, account: AccountId, plan_key: str, success_url: str, cancel_url: str
    ) -> str:
        """A Checkout Session URL; no second checkout while a subscription is live."""
        plan = self._plan(plan_key)
        customer = self.ensure_customer(account)
        eligible, history = self._guard_new_subscription(customer)
        trial = plan.trial_days if eligible else 0
        params = {
            "customer": customer,
            "price": plan.stripe_price,
            "trial_days": trial,
            "history": history,
            "success_url": success_url,
            "cancel_url": cancel_url,
        }
        intent = self._open_intent("checkout", customer, account, params)
        session_id, url = self.stripe.create_checkout_session(
            customer,
            plan.stripe_price,
            trial_days=trial,
            success_url=success_url,
            cancel_url=cancel_url,
            client_reference_id=account,
            idempotency_key=intent.id,
        )
        self._sent(intent, session_id)
        return url

    def subscribe(self, account: AccountId, plan_key: str) -> str:
        """Creates the subscription directly (a card already on file), same guard as checkout."""
        plan = self._plan(plan_key)
        customer = self.ensure_customer(account)
        eligible, history = self._guard_new_subscription(customer)
        trial = plan.trial_days if eligible else 0
        params = {
            "customer": customer,
            "price": plan.stripe_price,
            "trial_days": trial,
            "history": history,
        }
        intent = self._open_intent("subscribe", customer, account, params)
        sub = self.stripe.create_subscription(
            customer, plan.stripe_price, trial_days=trial, idempotency_key=intent.id
        )
        self._sent(intent, sub)
        return sub

    def portal(self, account: AccountId, return_url: str) -> str:
        with self.repo.transaction() as tx:
            customer = tx.customer_of(account)
        if customer is None:
            raise BillingError("no subscription to manage yet: start one first")
        intent = self._open_intent(
            "portal", customer, account, {"return_url": return_url, "at": self.now() // 60}
        )
        session_id, url = self.stripe.create_portal_session(
            customer, return_url, idempotency_key=intent.id
        )
        self._sent(intent, session_id)
        return url

    # --- reads ---------------------------------------------------------------------------

    def _views(self, tx: BillingTx, customer: str) -> list[SubView]:
        return [SubView(s.snapshot, tx.facts(s.snapshot.id), s.state) for s in tx.subs_of(customer)]

    def access(self, account: AccountId) -> Access:
        with self.repo.transaction() as tx:
            customer = tx.customer_of(account)
            views = self._views(tx, customer) if customer else []
        return decide_access(views, self.plans, self.now(), self.grace)

    def access_of_customer(self, customer: str) -> Access:
        with self.repo.transaction() as tx:
            views = self._views(tx, customer)
        return decide_access(views, self.plans, self.now(), self.grace)

    def primary_of(self, customer: str) -> SubView | None:
        with self.repo.transaction() as tx:
            return primary(self._views(tx, customer))
