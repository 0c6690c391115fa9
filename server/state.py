"""What the app holds while it runs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from collab.registry import Registry

from .quotas import ConnectionQuotas
from .settings import Settings

if TYPE_CHECKING:
    from .billing_gate import BillingGate


@dataclass
class AppState:
    settings: Settings
    secret: str
    engine: Engine
    registry: Registry
    ready: bool = False
    quotas: ConnectionQuotas = field(default_factory=ConnectionQuotas)
    billing: BillingGate | None = None
