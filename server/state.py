"""What the app holds while it runs."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from collab.registry import Registry
from sfu.service import Sfu

from .accounts import Directory
from .admission import Admission
from .attendance import Attendance, VisitLog
from .audit import AuditLog
from .check_reports import POSTS_PER_HOUR, CheckReports
from .connections import Connections
from .deletions import join_refusal
from .errors import ServerError
from .join_gate import JoinGate
from .quotas import ConnectionQuotas
from .settings import Settings
from .web import Attempts

if TYPE_CHECKING:
    from .billing_gate import BillingGate

if TYPE_CHECKING:
    from .call_policy import CallPolicyFeed


@dataclass
class AppState:
    settings: Settings
    secret: str
    engine: Engine
    registry: Registry
    ready: bool = False
    quotas: ConnectionQuotas = field(default_factory=ConnectionQuotas)
    billing: BillingGate | None = None
    sfu: Sfu | None = None
    call_policy: CallPolicyFeed | None = None
    directory: Directory = field(init=False)
    admission: Admission = field(init=False)
    connections: Connections = field(init=False)
    join_gate: JoinGate = field(init=False)
    audit: AuditLog = field(init=False)
    # Refused admin calls per address: each writes a permanent audit row, so an anonymous
    # flood is answered 429 (and only logged) past this rate.
    admin_refusals: Attempts = field(default_factory=lambda: Attempts(120, 60.0))
    check_reports: CheckReports = field(init=False)
    # /check reports per user: each is a row, so a loop posting them is refused (429).
    check_report_posts: Attempts = field(default_factory=lambda: Attempts(POSTS_PER_HOUR, 3600.0))
    signin_by_email: Attempts = field(init=False)
    signin_by_address: Attempts = field(init=False)

    def __post_init__(self) -> None:
        self.directory = Directory(self.engine, session_ttl=self.settings.session_ttl)
        self.connections = Connections(self.registry, VisitLog(Attendance(self.engine)))
        self.admission = Admission(lambda: self.billing, self.directory)
        self.join_gate = JoinGate(self._read_join_refusal)
        self.audit = AuditLog(self.engine)
        self.check_reports = CheckReports(self.engine)
        s = self.settings
        self.signin_by_email = Attempts(s.signin_attempts, s.signin_window)
        self.signin_by_address = Attempts(s.signin_attempts * 6, s.signin_window)

    async def _read_join_refusal(self, document: str) -> ServerError | None:
        return await asyncio.to_thread(join_refusal, self.engine, document)
