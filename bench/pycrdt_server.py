"""pycrdt-websocket 0.16.5 as a y-websocket server, for bench/relay.py.

Usage: python bench/pycrdt_server.py --host 127.0.0.1 --port 8001

The room is the URL path. Served by uvicorn with the same WebSocket implementation as
Inkroom (``websockets``) and permessage-deflate off, so that the comparison is fair.
"""

from __future__ import annotations

import argparse
import asyncio
import logging

import uvicorn
from pycrdt.websocket import ASGIServer, WebsocketServer


async def run(host: str, port: int) -> None:
    websocket_server = WebsocketServer(auto_clean_rooms=False)
    app = ASGIServer(websocket_server)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        ws="websockets",
        ws_per_message_deflate=False,
        log_level="warning",
        access_log=False,
        lifespan="on",
    )
    async with websocket_server:
        await uvicorn.Server(config).serve()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(run(args.host, args.port))


if __name__ == "__main__":
    main()
