"""What the app holds while it runs."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Engine

from collab.registry import Registry

from .quotas import ConnectionQuotas
from .settings import Settings


@dataclass
class AppState:
    settings: Settings
    secret: str
    engine: Engine
    registry: Registry
    ready: bool = False
    quotas: ConnectionQuotas = field(default_factory=ConnectionQuotas)
