"""An in-memory ledger with the SQL adapter's semantics (rollback included), for tests."""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from .events import Event
from .model import AccountId, DisputeFact, RefundFact, SubFacts
from .ports import Effect, Intent, StoredSub, Transition


@dataclass
class _Data:
    events: dict[str, tuple[str, int, str | None, int]] = field(default_factory=dict)
    customers: dict[str, AccountId | None] = field(default_factory=dict)
    subs: dict[str, StoredSub] = field(default_factory=dict)
    facts: dict[str, SubFacts] = field(default_factory=dict)
    transitions: list[Transition] = field(default_factory=list)
    intents: dict[str, Intent] = field(default_factory=dict)
    effects: dict[str, Effect] = field(default_factory=dict)
    claims: dict[str, int] = field(default_factory=dict)
    leases: dict[str, tuple[str, int]] = field(default_factory=dict)


class MemoryTx:
    def __init__(self, data: _Data) -> None:
        self.d = data

    def record_event(self, event: Event, customer: str | None, now: int) -> bool:
        if event.id in self.d.events:
            return False
        self.d.events[event.id] = (event.type, event.created, customer, now)
        return True

    def lock_customer(self, customer: str) -> None:
        return None  # the repository's one lock serializes transactions

    def link_customer(self, customer: str, account: AccountId | None, now: int) -> None:
        if self.d.customers.get(customer) is None:
            self.d.customers[customer] = account

    def account_of(self, customer: str) -> AccountId | None:
        return self.d.customers.get(customer)

    def customer_of(self, account: AccountId) -> str | None:
        for customer, owner in self.d.customers.items():
            if owner == account:
                return customer
        return None

    def customers(self) -> list[str]:
        return sorted(self.d.customers)

    def get_sub(self, subscription_id: str) -> StoredSub | None:
        return self.d.subs.get(subscription_id)

    def subs_of(self, customer: str) -> list[StoredSub]:
        return sorted(
            (s for s in self.d.subs.values() if s.snapshot.customer == customer),
            key=lambda s: (s.snapshot.created, s.snapshot.id),
        )

    def put_sub(self, sub: StoredSub, now: int) -> None:
        self.d.customers.setdefault(sub.snapshot.customer, None)
        self.d.subs[sub.snapshot.id] = sub

    def facts(self, subscription_id: str) -> SubFacts:
        return self.d.facts.get(subscription_id, SubFacts())

    def add_refund(self, fact: RefundFact, now: int) -> None:
        self.d.facts[fact.subscription] = self.facts(fact.subscription).with_refund(fact)

    def add_dispute(self, fact: DisputeFact, now: int) -> None:
        self.d.facts[fact.subscription] = self.facts(fact.subscription).with_dispute(fact)

    def append_transition(self, transition: Transition) -> None:
        self.d.transitions.append(transition)

    def add_intent(self, intent: Intent) -> None:
        if intent.id in self.d.intents:
            raise ValueError("duplicate intent id")
        self.d.intents[intent.id] = intent

    def get_intent(self, intent_id: str) -> Intent | None:
        return self.d.intents.get(intent_id)

    def recent_intent(self, kind: str, params_hash: str, since: int) -> Intent | None:
        found = [
            i
            for i in self.d.intents.values()
            if i.kind == kind
            and i.params_hash == params_hash
            and i.created_at >= since
            and i.status in ("open", "sent")
        ]
        return max(found, key=lambda i: i.created_at) if found else None

    def update_intent(
        self, intent_id: str, status: str, now: int, stripe_object: str | None, result: str | None
    ) -> None:
        intent = self.d.intents[intent_id]
        self.d.intents[intent_id] = replace(
            intent, status=status, stripe_object=stripe_object, result=result
        )

    def enqueue(self, effect: Effect, intent: Intent) -> bool:
        if effect.key in self.d.effects:
            return False
        self.add_intent(intent)
        self.d.effects[effect.key] = effect
        return True

    def claim_effects(self, now: int, lease: int, limit: int) -> list[Effect]:
        claimed: list[Effect] = []
        for effect in self.d.effects.values():
            if len(claimed) >= limit:
                break
            if effect.status == "pending" and self.d.claims.get(effect.key, 0) <= now:
                self.d.claims[effect.key] = now + lease
                claimed.append(effect)
        return claimed

    def finish_effect(self, key: str, status: str, now: int, error: str | None) -> None:
        effect = self.d.effects[key]
        self.d.effects[key] = replace(effect, status=status, attempts=effect.attempts + 1)
        self.d.claims.pop(key, None)

    def effects(self) -> list[Effect]:
        return list(self.d.effects.values())

    def take_lease(self, name: str, owner: str, now: int, ttl: int) -> bool:
        held = self.d.leases.get(name)
        if held is not None and held[0] != owner and held[1] > now:
            return False
        self.d.leases[name] = (owner, now + ttl)
        return True

    def timeline(self, customer: str) -> dict[str, list[dict[str, Any]]]:
        return {
            "events": [
                {"id": event_id, "type": kind, "created": created, "received_at": at}
                for event_id, (kind, created, c, at) in self.d.events.items()
                if c == customer
            ],
            "transitions": [asdict(t) for t in self.d.transitions if t.customer == customer],
            "intents": [asdict(i) for i in self.d.intents.values() if i.customer == customer],
        }


class MemoryRepo:
    """One lock for the whole ledger; a failed transaction leaves no trace."""

    def __init__(self) -> None:
        self.data = _Data()
        self._lock = threading.RLock()

    @contextmanager
    def transaction(self) -> Iterator[MemoryTx]:
        with self._lock:
            saved = copy.deepcopy(self.data)
            try:
                yield MemoryTx(self.data)
            except BaseException:
                self.data.__dict__.update(saved.__dict__)
                raise
