"""pycrdt's own ``Provider`` (a Python Yjs client) and a Node y-websocket client, one room."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio
import pytest
from pycrdt import Array, Doc, Map, Provider, Text
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosedOK

from .inkroom_process import CLASSROOM, InkroomServer
from .node_client import OpenDriver

pytestmark = [pytest.mark.interop, pytest.mark.anyio]

DEADLINE = 5.0


class WebsocketChannel:
    """pycrdt's ``Channel`` over a ``websockets`` client connection.

    A normal close ends the iteration (the provider stops); an abnormal one raises
    ``ConnectionClosedError`` out of the provider's task group.
    """

    def __init__(self, websocket: ClientConnection, path: str) -> None:
        self._websocket = websocket
        self._path = path

    @property
    def path(self) -> str:
        return self._path

    def __aiter__(self) -> WebsocketChannel:
        return self

    async def __anext__(self) -> bytes:
        try:
            return await self.recv()
        except ConnectionClosedOK:
            raise StopAsyncIteration from None

    async def send(self, message: bytes) -> None:
        await self._websocket.send(message)

    async def recv(self) -> bytes:
        message = await self._websocket.recv()
        if isinstance(message, str):
            raise TypeError("y-websocket frames are binary; the server sent text")
        return message


async def wait_until(doc: Doc[Any], condition: Callable[[], bool]) -> None:
    """Returns once ``condition()`` holds, re-checked after each transaction on ``doc``.

    Callers bound it with ``anyio.fail_after``.
    """
    # Subscribed before the first check, so no change falls between the two.
    async with doc.events() as events:
        if condition():
            return
        async for _ in events:
            if condition():
                return
    raise AssertionError("the document's event stream ended")


def decode_state_vector(data: bytes) -> dict[int, int]:
    """``{clientID: clock}`` from a v1 state vector (lib0 varUints: count, then pairs)."""
    position = 0

    def var_uint() -> int:
        nonlocal position
        value, shift = 0, 0
        while True:
            byte = data[position]
            position += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                return value

    pairs = [(var_uint(), var_uint()) for _ in range(var_uint())]
    assert position == len(data), "trailing bytes after the state vector"
    return dict(pairs)


async def test_pycrdt_provider_syncs_alongside_a_node_client(
    inkroom: InkroomServer, node: OpenDriver, board: str
) -> None:
    driver = await node()
    js = await driver.client(
        "js", server_url=inkroom.ws_url, room=board, token=inkroom.token(CLASSROOM)
    )
    await js.wait(synced=True)
    await js.map_set("from_js", "before python joined")
    await js.text_insert("js;")

    doc: Doc[Any] = Doc()
    shared_map = doc.get("map", type=Map)
    shared_array = doc.get("array", type=Array)
    shared_text = doc.get("text", type=Text)
    url = f"{inkroom.ws_url}/{board}?token={inkroom.token(CLASSROOM)}"
    async with (
        connect(url) as websocket,
        Provider(doc, WebsocketChannel(websocket, board)) as provider,
    ):
        with anyio.fail_after(DEADLINE):
            await provider.synced.wait()
        with anyio.fail_after(DEADLINE):
            await wait_until(
                doc,
                lambda: (
                    shared_map.get("from_js") == "before python joined"
                    and str(shared_text) == "js;"
                ),
            )

        shared_map["from_python"] = "hello from pycrdt"
        shared_array.append("py-stroke")
        shared_text.insert(len(shared_text), "py;")
        await js.wait(
            content={
                "map": {"from_js": "before python joined", "from_python": "hello from pycrdt"},
                "array": ["py-stroke"],
                "text": "js;py;",
            }
        )

        await js.map_set("from_js", "after python joined")
        await js.array_push("js-stroke")
        with anyio.fail_after(DEADLINE):
            await wait_until(
                doc,
                lambda: (
                    shared_array.to_py() == ["py-stroke", "js-stroke"]
                    and shared_map.get("from_js") == "after python joined"
                ),
            )

        node_view = await js.read()
        assert node_view.content == {
            "map": shared_map.to_py(),
            "array": shared_array.to_py(),
            "text": str(shared_text),
        }
        assert decode_state_vector(doc.get_state()) == node_view.clocks
