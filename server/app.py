"""``create_app``: the Starlette application and its lifespan."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket

from collab.adapters.sql_store import SqlStore
from collab.registry import Registry
from sfu.call import SfuConfig
from sfu.placement import Host, Leases
from sfu.service import Sfu

from . import cluster, control
from .billing_gate import billing_lifespan
from .bus import make_bus
from .call_policy import CallPolicyFeed
from .classroom import ClassroomHooks
from .db import make_engine, migrate
from .headers import SecurityHeaders
from .routes import accounts as account_routes
from .routes import classrooms as classroom_routes
from .routes.admin import admin_routes
from .routes.billing import billing_routes
from .routes.check_reports import check_report_routes
from .routes.client import ClientFiles, client_dir, shell
from .routes.collab import open_document, websocket_endpoint
from .routes.control import publish_control
from .routes.health import healthz, metrics, readyz
from .routes.replay import replay_routes
from .routes.sfu import sfu_endpoint
from .settings import Settings
from .state import AppState
from .web import OriginCheck
from .ws_direct import DOCUMENT_SOCKETS, DirectSocket

log = logging.getLogger("inkroom.server")


class InkroomApp(Starlette):
    """Starlette, with the documents' sockets (``/ws/...``) served without the middleware
    and the router in between.

    The middleware only acts on HTTP (security headers, the cross-origin check), and the
    router matched one fixed prefix; but every one of them was a coroutine frame kept
    suspended for as long as the socket stays open (12 frames, 4-5 KB of an idle
    connection's memory) and a call chain walked at every accept.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and scope["path"].startswith(DOCUMENT_SOCKETS):
            scope["app"] = self
            scope["path_params"] = {"document": scope["path"][len(DOCUMENT_SOCKETS) :]}
            await websocket_endpoint(WebSocket(scope, receive, send))
            return
        await super().__call__(scope, receive, send)

    async def open_document_socket(
        self, socket: DirectSocket, document: str, token: str | None
    ) -> None:
        """A ``/ws/...`` socket that uvicorn upgraded without ASGI (server/ws_direct.py)."""
        await open_document(self.state.inkroom, socket, document, token)


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
            # The SFU closes its calls before the registry flushes and unloads rooms.
            sfu_config = SfuConfig(loopback_only=settings.sfu_loopback_only)
            async with (
                registry,
                billing_lifespan(settings, engine) as billing,
                call_leases(settings, str(bus.node_id)) as (leases, me),
                Sfu(sfu_config, leases=leases, me=me) as sfu,
            ):
                state = AppState(settings, settings.signing_secret(), engine, registry)
                # Admin questions from other nodes: this node's rooms, ending its
                # connections (server/cluster.py).
                bus.on_ask(cluster.answerer(state))
                bus.on_control(control.applier(registry, state.join_gate))
                state.billing = billing
                state.sfu, state.call_policy = sfu, CallPolicyFeed(registry, sfu)
                app.state.inkroom = state
                state.ready = True
                log.info(
                    "inkroom ready on %s",
                    settings.public_url or f"http://{settings.host}:{settings.port}/",
                    extra={"database": engine.url.render_as_string(), "node": bus.node_id},
                )
                try:
                    yield
                finally:
                    state.ready = False
                    await state.connections.aclose()
        finally:
            engine.dispose()
            log.info("inkroom stopped")

    routes: list[Route | WebSocketRoute | Mount] = [
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics),
        # ``/ws/{document}`` is served by InkroomApp itself, before the router.
        *api_routes(),
        *admin_routes(),
        *replay_routes(),
        *billing_routes(),
        WebSocketRoute("/sfu/{classroom}", sfu_endpoint),
        *check_report_routes(),
    ]
    static_dir = client_dir(settings.static_dir)
    page = shell(static_dir)
    routes += [
        Route("/", page),
        Route("/c/{classroom}", page),
        Route("/j/{code}", page),
        Route("/check", page),  # the connection self-test
        Route("/admin", page),
        Route("/replay/{classroom}", page),
    ]
    if static_dir is not None:
        routes.append(Mount("/", ClientFiles(directory=static_dir)))
    return InkroomApp(
        routes=routes,
        lifespan=lifespan,
        middleware=[Middleware(SecurityHeaders), Middleware(OriginCheck, settings=settings)],
    )


@asynccontextmanager
async def call_leases(
    settings: Settings, node: str
) -> AsyncIterator[tuple[Leases | None, Host | None]]:
    """The SFU's placement across nodes: leases in Redis when this node has both a Redis
    URL and its own signaling URL; otherwise none (every call is this node's)."""
    if not (settings.redis_url and settings.sfu_node_url):
        yield None, None
        return
    from sfu.adapters.redis_leases import RedisLeases  # only multi-node loads redis

    leases = RedisLeases(settings.redis_url, prefix=settings.redis_prefix)
    try:
        yield leases, Host(node, settings.sfu_node_url.rstrip("/"))
    finally:
        await leases.aclose()


def api_routes() -> list[Route]:
    a, c = account_routes, classroom_routes
    return [
        Route("/api/auth/me", a.me),
        Route("/api/auth/signup", a.signup, methods=["POST"]),
        Route("/api/auth/signin", a.signin, methods=["POST"]),
        Route("/api/auth/signout", a.signout, methods=["POST"]),
        Route("/api/classrooms", c.list_classrooms),
        Route("/api/classrooms", c.create_classroom, methods=["POST"]),
        Route("/api/classrooms/{classroom}", c.get_classroom),
        Route("/api/classrooms/{classroom}", c.update_classroom, methods=["PATCH"]),
        Route("/api/classrooms/{classroom}/invites", c.list_invites),
        Route("/api/classrooms/{classroom}/invites", c.create_invite, methods=["POST"]),
        Route("/api/classrooms/{classroom}/token", c.page_token, methods=["POST"]),
        Route("/api/invites/{code}/revoke", c.revoke_invite, methods=["POST"]),
        Route("/api/invites/{code}", c.revoke_invite, methods=["DELETE"]),
        Route("/api/join/{code}", c.invite_info),
        Route("/api/join/{code}", c.join, methods=["POST"]),
        Route("/api/control", publish_control, methods=["POST"]),
    ]
