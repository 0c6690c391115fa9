"""Fixtures shared by every test package."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    """Async tests (``@pytest.mark.anyio``) run on asyncio, the server's own loop.

    Session-scoped so that module-scoped async fixtures (a shared server) can use it.
    """
    return "asyncio"
