from __future__ import annotations

import pytest


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


from collections.abc import AsyncIterator  # noqa: E402

from .buses import Cluster, LocalCluster  # noqa: E402


@pytest.fixture(params=["local"])
async def cluster(request: pytest.FixtureRequest) -> AsyncIterator[Cluster]:
    """Nodes on each bus implementation: every multi-node test runs on all of them."""
    made: Cluster = LocalCluster()
    try:
        yield made
    finally:
        await made.aclose()
