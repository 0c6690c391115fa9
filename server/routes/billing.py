"""Billing HTTP endpoints: Stripe's webhook, the tutor's checkout/portal/status, the admin
timeline.

The tutor's billing account is their signed-in account (``acct-N``, opaque to billing); a
tutor's access token (``inkroom token``) speaks for the account that owns its classroom.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from billing.adapters.stripe_gateway import BadSignature, verify_webhook
from billing.derive import describe, primary
from billing.model import AccountId
from billing.ports import StripeError
from billing.service import BillingError, Outcome

from ..admin import billing_attendance
from ..auth import Role
from ..billing_gate import BillingGate
from ..errors import Forbidden, InvalidToken, ServerError
from ..state import AppState
from ..web import Principal, principal
from .classrooms import managed

log = logging.getLogger("inkroom.billing")


def _gate(request: Request) -> BillingGate:
    state: AppState = request.app.state.inkroom
    assert state.billing is not None
    return state.billing


def _error(message: str, status: int) -> Response:
    return JSONResponse({"error": message}, status_code=status)


async def stripe_webhook(request: Request) -> Response:
    """``POST /billing/stripe/webhook``: verified over the raw body, stored once, derived."""
    gate = _gate(request)
    if gate.billing is None:
        return _error("billing is off", 404)
    body = await request.body()
    try:
        event = verify_webhook(
            body,
            request.headers.get("stripe-signature"),
            gate.webhook_secrets,
            tolerance=gate.settings.stripe_webhook_tolerance,
        )
    except BadSignature as exc:
        log.warning("billing webhook refused", extra={"reason": str(exc)})
        return _error(f"invalid webhook: {exc}", 400)
    try:
        outcome = await anyio.to_thread.run_sync(gate.billing.handle, event)
    except StripeError as exc:
        # Nothing was stored (the transaction rolled back): Stripe retries the delivery.
        log.warning("billing webhook deferred", extra={"event_id": event.id, "error": str(exc)})
        return _error("Stripe is unreachable, retry later", 503)
    gate.wake()
    return JSONResponse(
        {"received": True, "event": event.id, "duplicate": outcome is Outcome.DUPLICATE}
    )


async def _who(request: Request) -> Principal:
    """The signed-in caller (session cookie, bearer session or bearer access token).

    Raises:
        InvalidToken: nobody is signed in, or the bearer credential is not valid (401).
    """
    state: AppState = request.app.state.inkroom
    who = await principal(request, state.directory, state.secret)
    if who is None:
        raise InvalidToken("sign in first")
    return who


async def _tutor(request: Request) -> AccountId:
    """The account whose subscription this is: the signed-in account, or for a tutor's
    access token (``inkroom token``) the account that owns its classroom."""
    who = await _who(request)
    if who.account is not None:
        return AccountId(who.account.user_id)
    assert who.claims is not None
    if who.claims.role is Role.TUTOR:
        state: AppState = request.app.state.inkroom
        owner = await state.admission.owner(who.claims.classroom)
        if owner is not None:
            return AccountId(owner)
    raise Forbidden("only a tutor's account manages billing: sign in")


async def _json(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


async def account_billing(request: Request) -> Response:
    """``GET /api/billing/account``: the tutor's state in words, access, plans."""
    gate = _gate(request)
    try:
        account = await _tutor(request)
    except ServerError as exc:
        return _error(str(exc), exc.status_code)
    access = await gate.access(account, fresh=True)
    body: dict[str, Any] = {"enabled": gate.enabled, **access.to_json()}
    if gate.billing is not None:
        billing = gate.billing

        def words() -> tuple[str, bool, bool]:
            with billing.repo.transaction() as tx:
                customer = tx.customer_of(account)
                views = billing._views(tx, customer) if customer else []
            live = any(v.snapshot.stripe_live for v in views)
            return describe(primary(views), billing.now(), billing.grace), live, bool(customer)

        body["status"], live, customer = await anyio.to_thread.run_sync(words)
        # No second checkout while a subscription is live: the page offers the portal.
        body["can_subscribe"] = not live
        body["can_manage"] = customer
        body["plans"] = [
            {
                "key": p.key,
                "name": p.name,
                "students_per_classroom": p.students_per_classroom,
                "video": p.video,
                "trial_days": p.trial_days,
            }
            for p in billing.plans.values()
        ]
    return JSONResponse(body)


async def checkout(request: Request) -> Response:
    """``POST /api/billing/checkout`` ``{"plan", "success_url", "cancel_url"}`` -> ``{"url"}``."""
    gate = _gate(request)
    if gate.billing is None:
        return _error("billing is off: every classroom is free", 404)
    try:
        account = await _tutor(request)
    except ServerError as exc:
        return _error(str(exc), exc.status_code)
    body = await _json(request)
    base = str(request.base_url).rstrip("/")
    plan = str(body.get("plan") or "")
    success = str(body.get("success_url") or f"{base}/?billing=success")
    cancel = str(body.get("cancel_url") or f"{base}/?billing=canceled")
    billing = gate.billing
    try:
        url = await anyio.to_thread.run_sync(
            lambda: billing.start_checkout(account, plan, success, cancel)
        )
    except BillingError as exc:
        return _error(str(exc), 409)
    except StripeError as exc:
        return _error(f"Stripe refused: {exc}", 502)
    return JSONResponse({"url": url})


async def portal(request: Request) -> Response:
    """``POST /api/billing/portal`` ``{"return_url"}`` -> ``{"url"}`` (Stripe's portal)."""
    gate = _gate(request)
    if gate.billing is None:
        return _error("billing is off: every classroom is free", 404)
    try:
        account = await _tutor(request)
    except ServerError as exc:
        return _error(str(exc), exc.status_code)
    body = await _json(request)
    back = str(body.get("return_url") or str(request.base_url))
    billing = gate.billing
    try:
        url = await anyio.to_thread.run_sync(lambda: billing.portal(account, back))
    except BillingError as exc:
        return _error(str(exc), 409)
    except StripeError as exc:
        return _error(f"Stripe refused: {exc}", 502)
    return JSONResponse({"url": url})


async def admin_customer(request: Request) -> Response:
    """``GET /api/admin/billing/customers/{stripe_customer_id}``: state, access, timeline."""
    gate = _gate(request)
    try:
        if not (await _who(request)).is_admin:
            raise Forbidden("admins only")
    except ServerError as exc:
        return _error(str(exc), exc.status_code)
    if gate.billing is None:
        return _error("billing is off", 404)
    customer = request.path_params["stripe_customer_id"]
    billing = gate.billing

    def read() -> dict[str, Any] | None:
        with billing.repo.transaction() as tx:
            account = tx.account_of(customer)
            views = billing._views(tx, customer)
            timeline = tx.timeline(customer)
        if not views and not timeline["events"] and customer not in _known(billing):
            return None
        access = billing.access_of_customer(customer)
        first = primary(views)
        return {
            "stripe_customer_id": customer,
            "account_id": account,
            "state": access.state.value,
            "has_access": access.has_access,
            "reason": access.reason,
            "label": access.label,
            "status": describe(first, billing.now(), billing.grace),
            "primary_subscription": first.snapshot.id if first else None,
            "timeline": timeline,
            # Dispute evidence: who attended the account's classrooms, when, from where.
            "attendance": billing_attendance(request.app.state.inkroom, account),
            "generated_at": int(time.time()),
        }

    await request.app.state.inkroom.connections.flush_attendance()  # rows written in groups
    body = await anyio.to_thread.run_sync(read)
    if body is None:
        return _error("unknown customer", 404)
    return JSONResponse(body)


async def classroom_billing(request: Request) -> Response:
    """``GET /api/classrooms/{C}/billing``: for whoever manages the classroom, its owner's
    access (the banner the tutor's board shows, and whether students are let in)."""
    found = await managed(request, request.path_params["classroom"])
    if isinstance(found, Response):
        return found
    state: AppState = request.app.state.inkroom
    access = await state.admission.access(found[1].id)
    body = {
        "enabled": state.billing is not None and state.billing.enabled,
        "has_access": access.has_access,
        "state": access.state.value,
        "reason": access.reason,
        "banner": access.banner,
        "entitlements": access.entitlements.to_json(),
        "manage_url": "/#billing",
    }
    return JSONResponse(body, headers={"Cache-Control": "no-store"})


def _known(billing: Any) -> set[str]:
    with billing.repo.transaction() as tx:
        return set(tx.customers())


def billing_routes() -> list[Route]:
    return [
        Route("/billing/stripe/webhook", stripe_webhook, methods=["POST"]),
        Route("/api/billing/account", account_billing, methods=["GET"]),
        Route("/api/billing/checkout", checkout, methods=["POST"]),
        Route("/api/billing/portal", portal, methods=["POST"]),
        Route("/api/classrooms/{classroom}/billing", classroom_billing),
        Route("/api/admin/billing/customers/{stripe_customer_id}", admin_customer),
    ]
