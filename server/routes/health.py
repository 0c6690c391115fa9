"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import asyncio

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..state import AppState


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    state: AppState = request.app.state.inkroom
    checks: dict[str, str] = {}

    def ping() -> None:
        with state.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    try:
        async with asyncio.timeout(2):
            await asyncio.to_thread(ping)
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"error: {type(exc).__name__}"
    ok = state.ready and all(v == "ok" for v in checks.values())
    # One document that cannot be saved or loaded degrades the node without taking it
    # out of rotation (the others are served and saved); the document is named.
    degraded = state.registry.degraded()
    status = "not ready" if not ok else "degraded" if degraded else "ready"
    body: dict[str, object] = {
        "status": status,
        "checks": checks,
        "rooms": len(state.registry.rooms),
    }
    if degraded:
        body["degraded"] = {k: v[:20] for k, v in degraded.items()}
    return JSONResponse(body, status_code=200 if ok else 503)


async def metrics(request: Request) -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
