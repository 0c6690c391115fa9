from __future__ import annotations

import pytest


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


import os  # noqa: E402
from collections.abc import AsyncIterator  # noqa: E402

from .buses import Cluster, LocalCluster, RedisCluster, redis_available  # noqa: E402


@pytest.fixture(params=["local", "redis"])
async def cluster(request: pytest.FixtureRequest) -> AsyncIterator[Cluster]:
    """Nodes on each bus implementation: every multi-node test runs on all of them."""
    made: Cluster
    if request.param == "redis":
        why = redis_available()
        if why is not None:
            if os.environ.get("CI") == "true":
                pytest.fail(f"Redis is required under CI: {why}")
            pytest.skip(f"Redis unavailable: {why}")
        made = RedisCluster()
    else:
        made = LocalCluster()
    try:
        yield made
    finally:
        await made.aclose()
