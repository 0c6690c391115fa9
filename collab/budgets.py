"""Rate budgets: token buckets per connection, and per user across connections."""

from __future__ import annotations

import time
from collections import OrderedDict


class TokenBucket:
    """Allows ``rate`` events per second on average, with bursts up to ``burst``."""

    __slots__ = ("_burst", "_rate", "_stamp", "_tokens")

    def __init__(self, rate: float, burst: int) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._tokens = float(burst)
        self._stamp = time.monotonic()

    def take(self, amount: float = 1.0) -> bool:
        now = time.monotonic()
        self._tokens = min(self._burst, self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now
        if self._tokens < amount:
            return False
        self._tokens -= amount
        return True


class UserBudgets:
    """One awareness byte bucket per user, shared by that user's connections and kept
    after they close (up to ``capacity`` users, least recently used forgotten first), so
    a flooder that is closed and reconnects starts with the empty bucket it left."""

    def __init__(self, rate: float, burst: int, capacity: int = 10_000) -> None:
        self._rate = rate
        self._burst = burst
        self._capacity = capacity
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def get(self, user: str) -> TokenBucket:
        bucket = self._buckets.get(user)
        if bucket is None:
            bucket = self._buckets[user] = TokenBucket(self._rate, self._burst)
            if len(self._buckets) > self._capacity:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(user)
        return bucket
