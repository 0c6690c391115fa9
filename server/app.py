"""``create_app``: the Starlette application and its lifespan."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles

from collab.adapters.sql_store import SqlStore
from collab.registry import Registry

from . import control
from .bus import make_bus
from .classroom import ClassroomHooks
from .db import make_engine, migrate
from .headers import SecurityHeaders
from .routes.classroom import create_invite, spa_shell
from .routes.collab import websocket_endpoint
from .routes.control import publish_control
from .routes.health import healthz, metrics, readyz
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
        bus = make_bus(settings)
        registry = Registry(store, bus, hooks=ClassroomHooks(), limits=settings.limits())
        bus.on_control(control.applier(registry))
        try:
            async with registry:
                state = AppState(settings, settings.signing_secret(), engine, registry)
                app.state.inkroom = state
                state.ready = True
                log.info(
                    "inkroom ready",
                    extra={"database": engine.url.render_as_string(), "node": bus.node_id},
                )
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
        Route("/api/classrooms/{classroom}/invites", create_invite, methods=["POST"]),
        Route("/api/control", publish_control, methods=["POST"]),
    ]
    static_dir = settings.static_dir
    if static_dir is not None and static_dir.is_dir():
        routes.append(Route("/c/{classroom}", spa_shell(static_dir)))
        routes.append(Mount("/", StaticFiles(directory=static_dir, html=True)))
    return Starlette(routes=routes, lifespan=lifespan, middleware=[Middleware(SecurityHeaders)])
