"""Ports of the billing core: Stripe (an adapter over the SDK) and the ledger (an SQL adapter)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from .events import Event
from .model import AccountId, DisputeFact, RefundFact, Snapshot, SubFacts
from .states import State


class StripeError(Exception):
    """A Stripe call failed (network, API error); the outbox retries it with the same key."""


class StripePort(Protocol):
    def list_subscriptions(self, *, customer: str | None = None) -> list[Snapshot]:
        """Every subscription (all statuses), or one customer's."""
        ...

    def fetch_subscription(self, subscription_id: str) -> Snapshot | None: ...

    def fetch_refund(self, refund_id: str) -> RefundFact | None: ...

    def refunds_of_charge(self, charge_id: str) -> list[RefundFact]: ...

    def list_refunds(self) -> list[RefundFact]:
        """Refunds that end a subscription (``metadata.ends_subscription``)."""
        ...

    def fetch_dispute(self, dispute_id: str) -> DisputeFact | None: ...

    def list_disputes(self) -> list[DisputeFact]: ...

    def create_customer(
        self, account: AccountId, email: str | None, *, idempotency_key: str
    ) -> str:
        """Returns the Stripe customer id."""
        ...

    def create_subscription(
        self, customer: str, price: str, *, trial_days: int, idempotency_key: str
    ) -> str:
        """Returns the subscription id (for payment methods already on file)."""
        ...

    def create_checkout_session(
        self,
        customer: str,
        price: str,
        *,
        trial_days: int,
        success_url: str,
        cancel_url: str,
        client_reference_id: str,
        idempotency_key: str,
    ) -> tuple[str, str]:
        """Returns the session id and its URL."""
        ...

    def create_portal_session(
        self, customer: str, return_url: str, *, idempotency_key: str
    ) -> tuple[str, str]: ...

    def cancel_subscription(self, subscription_id: str, *, idempotency_key: str) -> str:
        """Returns the status Stripe answers with."""
        ...

    def refund_charge(
        self, charge_id: str, *, subscription: str, ends_subscription: bool, idempotency_key: str
    ) -> str:
        """Returns the refund id."""
        ...


@dataclass(frozen=True, slots=True)
class StoredSub:
    snapshot: Snapshot
    state: State


@dataclass(frozen=True, slots=True)
class Transition:
    subscription: str
    customer: str
    from_state: State
    to_state: State
    forbidden: bool
    stripe_status: str
    reason: str
    at: int
    event_id: str | None = None
    event_type: str | None = None
    request_id: str | None = None
    idempotency_key: str | None = None


@dataclass(frozen=True, slots=True)
class Intent:
    """An outgoing Stripe call, written before the call; ``id`` is its Idempotency-Key."""

    id: str
    kind: str
    customer: str | None
    account: str | None
    params_hash: str
    params: str
    status: str  # open | sent | failed
    created_at: int
    stripe_object: str | None = None
    result: str | None = None


@dataclass(frozen=True, slots=True)
class Effect:
    """An outbox row: one side effect, keyed by the effect itself (``cancel:{subscription}``)."""

    key: str
    action: str
    target: str
    intent_id: str
    status: str  # pending | done | failed
    attempts: int = 0
    params: str = "{}"


class BillingTx(Protocol):
    """One transaction on the ledger. Everything in it commits together or not at all."""

    def record_event(self, event: Event, customer: str | None, now: int) -> bool:
        """Stores the event; False if its id is already stored (a duplicate)."""
        ...

    def lock_customer(self, customer: str) -> None:
        """Serializes work on one customer across nodes until the transaction ends."""
        ...

    def link_customer(self, customer: str, account: AccountId | None, now: int) -> None: ...

    def account_of(self, customer: str) -> AccountId | None: ...

    def customer_of(self, account: AccountId) -> str | None: ...

    def customers(self) -> list[str]: ...

    def get_sub(self, subscription_id: str) -> StoredSub | None: ...

    def subs_of(self, customer: str) -> list[StoredSub]: ...

    def put_sub(self, sub: StoredSub, now: int) -> None: ...

    def facts(self, subscription_id: str) -> SubFacts: ...

    def add_refund(self, fact: RefundFact, now: int) -> None: ...

    def add_dispute(self, fact: DisputeFact, now: int) -> None: ...

    def append_transition(self, transition: Transition) -> None: ...

    def add_intent(self, intent: Intent) -> None: ...

    def get_intent(self, intent_id: str) -> Intent | None: ...

    def recent_intent(self, kind: str, params_hash: str, since: int) -> Intent | None:
        """The newest open or sent intent of this kind and parameters created since ``since``."""
        ...

    def update_intent(
        self, intent_id: str, status: str, now: int, stripe_object: str | None, result: str | None
    ) -> None: ...

    def enqueue(self, effect: Effect, intent: Intent) -> bool:
        """Adds the effect and its intent unless an effect with that key exists."""
        ...

    def claim_effects(self, now: int, lease: int, limit: int) -> list[Effect]:
        """Pending effects not claimed by a live lease, now claimed until ``now + lease``."""
        ...

    def finish_effect(self, key: str, status: str, now: int, error: str | None) -> None: ...

    def effects(self) -> list[Effect]: ...

    def take_lease(self, name: str, owner: str, now: int, ttl: int) -> bool:
        """One node at a time: True if ``owner`` now holds ``name`` until ``now + ttl``."""
        ...

    def timeline(self, customer: str) -> dict[str, list[dict[str, Any]]]: ...


class BillingRepo(Protocol):
    def transaction(self) -> AbstractContextManager[BillingTx]: ...


def iter_subs(tx: BillingTx, customer: str) -> Iterator[tuple[StoredSub, SubFacts]]:
    for sub in tx.subs_of(customer):
        yield sub, tx.facts(sub.snapshot.id)
