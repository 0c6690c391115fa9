"""A local stand-in for Stripe's HTTP API over the model (:class:`World`), which signs and
delivers its events to a webhook URL like Stripe does.

For tests that drive billing through the real code path end to end (the stripe SDK in
``StripeGateway`` -> this server; this server -> ``POST /billing/stripe/webhook`` with a
signature made with the test secret), including the browser tests: Checkout is a page here
(``GET /checkout/{session}``) that creates the subscription, delivers the events and
redirects to the ``success_url``, as Stripe's hosted page does after a card is entered.

Test controls (not Stripe's API):

- ``POST /_world/config`` ``{"webhook_url", "secret"}``: where to deliver events;
- ``POST /_world/step`` ``{"customer"? | "account"?, "path": ["past_due", "unpaid"]}``: moves
  the customer's newest subscription along Stripe's status graph, then delivers the events.
  ``account`` finds the customer by its ``metadata.account_id``.

Run alone (the browser tests do): ``python -m tests.billing.world_http`` prints its base URL.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import secrets
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from billing.adapters.stripe_gateway import sign

from .fake_stripe import World


@dataclass
class Session:
    id: str
    customer: str
    price: str
    trial_days: int
    success_url: str
    account: str
    completed: bool = False


@dataclass
class StandIn:
    """The world, its customers and Checkout sessions, and where its events go."""

    world: World = field(default_factory=lambda: World(now=int(time.time())))
    customers: dict[str, str] = field(default_factory=dict)  # customer -> account id
    sessions: dict[str, Session] = field(default_factory=dict)
    answers: dict[str, dict[str, Any]] = field(default_factory=dict)  # Idempotency-Key
    webhook_url: str | None = None
    secret: str | None = None
    delivered: int = 0
    lock: threading.RLock = field(default_factory=threading.RLock)
    # Deliveries go out without ``lock`` held: the server re-fetches from us while handling.
    delivery: threading.Lock = field(default_factory=threading.Lock)
    base: str = ""

    def tick(self) -> None:
        self.world.now = max(self.world.now, int(time.time()))

    def deliver(self) -> int:
        """Signs and posts every event not delivered yet, in order; returns how many.
        Call it without ``lock`` held."""
        sent = 0
        with self.delivery:
            while True:
                with self.lock:
                    if self.delivered >= len(self.world.events):
                        return sent
                    event = self.world.events[self.delivered]
                    self.delivered += 1
                    url, secret = self.webhook_url, self.secret
                if url and secret:
                    self._post(url, secret, event.payload)
                    sent += 1

    @staticmethod
    def _post(url: str, secret: str, payload: str) -> None:
        request = urllib.request.Request(
            url,
            data=payload.encode(),
            headers={
                "Content-Type": "application/json",
                "Stripe-Signature": sign(payload, secret, int(time.time())),
            },
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            if response.status != 200:
                raise RuntimeError(f"webhook answered {response.status}")

    def customer_of(self, account: str) -> str | None:
        for customer, owner in self.customers.items():
            if owner == account:
                return customer
        return None

    def newest(self, customer: str) -> str | None:
        subs = [s for s in self.world.subs.values() if s["customer"] == customer]
        return max(subs, key=lambda s: (s["created"], s["id"]))["id"] if subs else None

    def step(self, customer: str, path: list[str]) -> str:
        self.tick()
        sub = self.newest(customer)
        if sub is None:
            raise KeyError(f"{customer} has no subscription")
        for status in path:
            if not self.world.step(sub, status):
                raise ValueError(f"{sub}: cannot go to {status}")
        return sub

    def complete_checkout(self, session_id: str) -> Session:
        session = self.sessions[session_id]
        if not session.completed:
            session.completed = True
            self.tick()
            sub = self.world.create(session.customer, "trial" if session.trial_days else "pay_ok")
            self.world.emit(
                "checkout.session.completed",
                {
                    "id": session.id,
                    "object": "checkout.session",
                    "customer": session.customer,
                    "subscription": sub,
                    "client_reference_id": session.account,
                    "mode": "subscription",
                    "status": "complete",
                },
            )
        return session


def _listing(url: str, data: list[dict[str, Any]]) -> dict[str, Any]:
    return {"object": "list", "data": data, "has_more": False, "url": url}


def _not_found(what: str) -> tuple[int, dict[str, Any]]:
    return 404, {"error": {"type": "invalid_request_error", "message": f"No such {what}"}}


def _handle(standin: StandIn, method: str, path: str, form: dict[str, str]) -> tuple[int, Any]:
    world = standin.world
    parts = [p for p in path.split("/") if p]
    if method == "POST" and path == "/v1/customers":
        customer = "cus_" + secrets.token_hex(6)
        standin.customers[customer] = form.get("metadata[account_id]", "")
        return 200, {"id": customer, "object": "customer", "metadata": {}}
    if path == "/v1/subscriptions" and method == "GET":
        wanted = form.get("customer")
        subs = [s for s in world.subs.values() if wanted is None or s["customer"] == wanted]
        return 200, _listing(path, subs)
    if parts[:2] == ["v1", "subscriptions"] and len(parts) == 3:
        sub = world.subs.get(parts[2])
        if sub is None:
            return _not_found("subscription")
        if method == "DELETE":
            standin.tick()
            if sub["status"] != "canceled":
                world.step(sub["id"], "canceled")
        return 200, sub
    if path in ("/v1/refunds", "/v1/disputes") and method == "GET":
        return 200, _listing(path, [])
    if method == "POST" and path == "/v1/checkout/sessions":
        session = Session(
            id="cs_" + secrets.token_hex(6),
            customer=form.get("customer", ""),
            price=form.get("line_items[0][price]", ""),
            trial_days=int(form.get("subscription_data[trial_period_days]", "0")),
            success_url=form.get("success_url", "/"),
            account=form.get("client_reference_id", ""),
        )
        standin.sessions[session.id] = session
        url = f"{standin.base}/checkout/{session.id}"
        return 200, {"id": session.id, "object": "checkout.session", "url": url}
    if method == "POST" and path == "/v1/billing_portal/sessions":
        portal = "bps_" + secrets.token_hex(6)
        url = f"{standin.base}/portal/{portal}"
        return 200, {"id": portal, "object": "billing_portal.session", "url": url}
    return _not_found(path)


@contextmanager
def world_server() -> Iterator[StandIn]:
    """Starts the stand-in on 127.0.0.1 (a free port); ``standin.base`` is its URL."""
    standin = StandIn()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return

        def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Request-Id", "req_" + secrets.token_hex(6))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def _route(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length).decode() if length else ""
            url = urlsplit(self.path)
            try:
                with standin.lock:
                    reply = self._dispatch(method, url.path, url.query, raw)
                if method == "DELETE" or url.path.startswith(("/_world/", "/checkout/")):
                    # What this request made happen, before answering. (Not from reads: the
                    # server reads from us while it handles a delivery.)
                    standin.deliver()
            except (KeyError, ValueError, RuntimeError, OSError) as exc:
                reply = 400, {"error": {"type": "invalid_request_error", "message": str(exc)}}
            status, body = reply
            if status == 303:
                self.send_response(303)
                self.send_header("Location", str(body))
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self._send(status, body)

        def _dispatch(self, method: str, path: str, query: str, raw: str) -> tuple[int, Any]:
            if path == "/_world/config":
                body = json.loads(raw or "{}")
                standin.webhook_url = body.get("webhook_url")
                standin.secret = body.get("secret")
                return 200, {"ok": True}
            if path == "/_world/step":
                body = json.loads(raw or "{}")
                customer = body.get("customer") or standin.customer_of(str(body.get("account")))
                if customer is None:
                    raise KeyError("no such customer")
                sub = standin.step(customer, list(body.get("path") or []))
                return 200, {"subscription": standin.world.subs[sub]}
            if path.startswith("/checkout/"):
                session = standin.complete_checkout(path.removeprefix("/checkout/"))
                return 303, session.success_url
            key = self.headers.get("Idempotency-Key")
            if key and method == "POST" and key in standin.answers:
                return 200, standin.answers[key]
            form = dict(parse_qsl(query)) | dict(parse_qsl(raw))
            status, body = _handle(standin, method, path, form)
            if key and status == 200 and method == "POST":
                standin.answers[key] = body
            return status, body

        def do_GET(self) -> None:
            self._route("GET")

        def do_POST(self) -> None:
            self._route("POST")

        def do_DELETE(self) -> None:
            self._route("DELETE")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    standin.base = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield standin
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.parse_args()
    with world_server() as standin:
        print(standin.base, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            sys.stdin.read()  # runs until its parent closes stdin (or kills it)


if __name__ == "__main__":
    main()
