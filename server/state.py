"""What the app holds while it runs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from collab.registry import Registry

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
    billing: BillingGate | None = None
