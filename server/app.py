"""``create_app``: the Starlette application and its lifespan."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles

from collab.adapters.sql_store import SqlStore
from collab.memory import LocalBus
from collab.registry import Registry
from sfu.call import SfuConfig
from sfu.service import Sfu

from .call_policy import CallPolicyFeed
from .classroom import ClassroomHooks
from .db import make_engine, migrate
from .routes.classroom import create_invite, spa_shell
from .routes.collab import websocket_endpoint
from .routes.health import healthz, metrics, readyz
from .routes.sfu import sfu_endpoint
from .settings import Settings
from .state import AppState

log = logging.getLogger("inkroom.server")


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        engine = make_engine(settings.sql_url)
        migrate(engine)
        store = SqlStore(engine)
        registry = Registry(store, LocalBus(), hooks=ClassroomHooks(), limits=settings.limits())
        try:
            # The SFU closes its calls before the registry flushes and unloads rooms.
            sfu_config = SfuConfig(loopback_only=settings.sfu_loopback_only)
            async with registry, Sfu(sfu_config) as sfu:
                state = AppState(settings, settings.signing_secret(), engine, registry)
                state.sfu, state.call_policy = sfu, CallPolicyFeed(registry, sfu)
                app.state.inkroom = state
                state.ready = True
                log.info("inkroom ready", extra={"database": engine.url.render_as_string()})
                try:
                    yield
                finally:
                    state.ready = False
        finally:
            engine.dispose()
            log.info("inkroom stopped")

    routes: list[Route | WebSocketRoute | Mount] = [
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics),
        WebSocketRoute("/ws/{document:path}", websocket_endpoint),
        WebSocketRoute("/sfu/{classroom}", sfu_endpoint),
        Route("/api/classrooms/{classroom}/invites", create_invite, methods=["POST"]),
    ]
    static_dir = settings.static_dir
    if static_dir is not None and static_dir.is_dir():
        routes.append(Route("/c/{classroom}", spa_shell(static_dir)))
        routes.append(Route("/check", spa_shell(static_dir)))  # the connection self-test
        routes.append(Mount("/", StaticFiles(directory=static_dir, html=True)))
    return Starlette(routes=routes, lifespan=lifespan)
