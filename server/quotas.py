"""Connection quotas per user and per classroom, so one token or one classroom cannot
take a node's capacity from the others."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from .errors import QuotaExceeded


@dataclass
class Lease:
    """One counted connection; :meth:`release` exactly once (idempotent)."""

    quotas: ConnectionQuotas
    user: str
    classroom: str
    released: bool = False

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.quotas._drop(self)


@dataclass
class ConnectionQuotas:
    per_user: int = 16
    per_classroom: int = 400
    _users: Counter[str] = field(default_factory=Counter)
    _classrooms: Counter[str] = field(default_factory=Counter)

    def acquire(self, user: str, classroom: str) -> Lease:
        """Counts a connection.

        Raises:
            QuotaExceeded: the user or the classroom holds its maximum (close code 4429).
        """
        if self._users[user] >= self.per_user:
            raise QuotaExceeded(f"more than {self.per_user} connections for this user")
        if self._classrooms[classroom] >= self.per_classroom:
            raise QuotaExceeded(f"more than {self.per_classroom} connections in this classroom")
        self._users[user] += 1
        self._classrooms[classroom] += 1
        return Lease(self, user, classroom)

    def _drop(self, lease: Lease) -> None:
        for counter, key in ((self._users, lease.user), (self._classrooms, lease.classroom)):
            counter[key] -= 1
            if counter[key] <= 0:
                del counter[key]
