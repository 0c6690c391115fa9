"""Live servers for the security regression tests (one per finding of issue 6)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from server.auth import Role, issue
from tests.server.live import live_server, settings_for

SECRET = "security-secret-" + "0123456789abcdef" * 4


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture
def server(data_dir: Path) -> Iterator[str]:
    with live_server(settings_for(data_dir, SECRET)) as url:
        yield url


def token(role: Role, user: str, classroom: str = "c1", name: str = "") -> str:
    return issue(SECRET, classroom=classroom, role=role, user_id=user, name=name)


def ws_url(server: str, document: str, role: Role, user: str, classroom: str = "c1") -> str:
    return f"{server}/ws/{document}?token={token(role, user, classroom)}"
