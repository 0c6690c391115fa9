"""What the app holds while it runs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from collab.registry import Registry
from sfu.service import Sfu

from .settings import Settings

if TYPE_CHECKING:
    from .call_policy import CallPolicyFeed


@dataclass
class AppState:
    settings: Settings
    secret: str
    engine: Engine
    registry: Registry
    ready: bool = False
    sfu: Sfu | None = None
    call_policy: CallPolicyFeed | None = None
