"""The in-process bus: delivery to the other subscribers only, on a later loop turn."""

from __future__ import annotations

import asyncio

import pytest

from collab.memory import LocalBus
from collab.ports import DocumentName

pytestmark = pytest.mark.anyio
NAME = DocumentName("c1/board")


async def test_publish_reaches_other_subscribers_never_the_publisher() -> None:
    bus = LocalBus()
    got: dict[str, list[bytes]] = {"a": [], "b": [], "other-doc": []}
    a = bus.subscribe(NAME, got["a"].append)
    bus.subscribe(NAME, got["b"].append)
    bus.subscribe(DocumentName("c2/board"), got["other-doc"].append)
    a.publish(b"u1")
    assert got == {"a": [], "b": [], "other-doc": []}, "delivery waits for the loop"
    await asyncio.sleep(0)
    assert got == {"a": [], "b": [b"u1"], "other-doc": []}


async def test_a_closed_subscription_gets_nothing() -> None:
    bus = LocalBus()
    got: list[bytes] = []
    a = bus.subscribe(NAME, lambda u: None)
    b = bus.subscribe(NAME, got.append)
    b.close()
    b.close()
    a.publish(b"u1")
    await asyncio.sleep(0)
    assert got == []
