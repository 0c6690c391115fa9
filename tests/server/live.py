"""A real uvicorn server in a background thread, on a free port, stopped by the test."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import uvicorn

from server.app import create_app
from server.http_protocol import uvicorn_options
from server.settings import Settings
from server.ws_protocol import InkroomWebSocketProtocol


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def live_server(
    settings: Settings, *, ping_interval: float = 5.0, compression: bool = False
) -> Iterator[str]:
    """Yields ``ws://127.0.0.1:PORT``; the server shuts down (flushing rooms) on exit."""
    port = free_port()
    config = uvicorn.Config(
        create_app(settings),
        host="127.0.0.1",
        port=port,
        log_config=None,
        access_log=False,
        ws=InkroomWebSocketProtocol,
        ws_max_size=settings.max_message_bytes,
        ws_ping_interval=ping_interval,
        ws_ping_timeout=ping_interval,
        ws_per_message_deflate=compression,
        lifespan="on",
        **uvicorn_options(),
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("server did not start")
        time.sleep(0.01)
    try:
        yield f"ws://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)


def settings_for(tmp: Path, secret: str, **overrides: object) -> Settings:
    return Settings(data_dir=tmp, secret=secret, **overrides)  # type: ignore[arg-type]
