"""localstripe for tests: started as a child process on 127.0.0.1, stopped by its pid."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx2 as httpx

ROOT = Path(__file__).resolve().parents[2]
API_KEY = "sk_test_inkroom_localstripe"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def localstripe() -> Iterator[str]:
    """Yields the base URL, e.g. ``http://127.0.0.1:PORT``."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.billing.run_localstripe", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(f"{base}/v1/customers", auth=(API_KEY, ""), timeout=1)
                break
            except httpx.TransportError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    err = proc.stderr.read().decode() if proc.stderr else ""
                    raise RuntimeError(f"localstripe did not start: {err[-2000:]}") from None
                time.sleep(0.1)
        yield base
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        if proc.stderr:
            proc.stderr.close()


def register_webhook(base: str, hook_id: str, url: str, secret: str) -> None:
    response = httpx.post(
        f"{base}/_config/webhooks/{hook_id}",
        data={"url": url, "secret": secret},
        auth=(API_KEY, ""),
        timeout=5,
    )
    response.raise_for_status()
