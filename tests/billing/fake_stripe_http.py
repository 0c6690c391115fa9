"""A fake of Stripe's HTTP API for one subscription, counting the calls it gets.

A fake because Stripe's live API cannot be reached here (and localstripe ignores
Idempotency-Key); it honours Idempotency-Key like Stripe: a key seen before gets the first
answer again and changes nothing.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class FakeStripe:
    subscription: str = "sub_crash"
    customer: str = "cus_crash"
    status: str = "active"
    calls: list[tuple[str, str, str | None]] = field(default_factory=list)
    answers: dict[str, dict[str, Any]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def body(self) -> dict[str, Any]:
        return {
            "id": self.subscription,
            "object": "subscription",
            "customer": self.customer,
            "status": self.status,
            "created": 1_800_000_000,
            "items": {"object": "list", "data": []},
        }

    def cancels(self) -> list[tuple[str, str, str | None]]:
        return [c for c in self.calls if c[0] == "DELETE"]


@contextmanager
def fake_stripe_server() -> Iterator[tuple[str, FakeStripe]]:
    fake = FakeStripe()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return

        def _send(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Request-Id", "req_fake")
            self.end_headers()
            self.wfile.write(data)

        def _route(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            key = self.headers.get("Idempotency-Key")
            with fake.lock:
                fake.calls.append((method, self.path.split("?")[0], key))
                if self.path.split("?")[0] != f"/v1/subscriptions/{fake.subscription}":
                    self._send(404, {"error": {"type": "invalid_request_error", "message": "no"}})
                    return
                if method == "DELETE":
                    if key and key in fake.answers:
                        self._send(200, fake.answers[key])
                        return
                    fake.status = "canceled"
                    answer = fake.body()
                    if key:
                        fake.answers[key] = answer
                    self._send(200, answer)
                    return
                self._send(200, fake.body())

        def do_GET(self) -> None:
            self._route("GET")

        def do_DELETE(self) -> None:
            self._route("DELETE")

        def do_POST(self) -> None:
            self._route("POST")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
