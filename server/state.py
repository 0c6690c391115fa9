"""What the app holds while it runs."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from collab.registry import Registry

from .settings import Settings


@dataclass
class AppState:
    settings: Settings
    secret: str
    engine: Engine
    registry: Registry
    ready: bool = False
