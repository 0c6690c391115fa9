"""``inkroom serve`` and ``inkroom token``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from .auth import Role, issue
from .settings import Settings


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {
        k: v
        for k, v in {
            "host": getattr(args, "host", None),
            "port": getattr(args, "port", None),
            "data_dir": args.data_dir,
            "database_url": getattr(args, "database_url", None),
            "redis_url": getattr(args, "redis_url", None),
            "node_id": getattr(args, "node_id", None),
            "static_dir": getattr(args, "static_dir", None),
        }.items()
        if v is not None
    }
    return Settings(**overrides)


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    from . import logs
    from .app import create_app
    from .http_protocol import uvicorn_options
    from .ws_protocol import InkroomWebSocketProtocol

    settings = _settings(args)
    logs.configure(settings.log_level, json_lines=settings.log_json)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,
        # The access log would print the query string, and the token travels there.
        access_log=False,
        ws=InkroomWebSocketProtocol,
        ws_max_size=settings.max_message_bytes,
        ws_ping_interval=settings.ws_ping_interval,
        ws_ping_timeout=settings.ws_ping_timeout,
        ws_per_message_deflate=settings.ws_compression,
        timeout_graceful_shutdown=15,
        **uvicorn_options(),
    )
    return 0


def token(args: argparse.Namespace) -> int:
    settings = _settings(args)
    user = args.user or f"{args.role}-{args.classroom}"
    try:
        value = issue(
            settings.signing_secret(),
            classroom=args.classroom,
            role=Role(args.role),
            user_id=user,
            name=args.name or user,
            ttl=args.ttl,
        )
    except ValueError as exc:
        print(f"inkroom token: {exc}", file=sys.stderr)
        return 2
    print(value)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="inkroom", description="Inkroom classroom server")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("serve", help="run the server (SQLite under the data dir by default)")
    run.add_argument("--host")
    run.add_argument("--port", type=int)
    run.add_argument("--data-dir", type=Path)
    run.add_argument("--database-url")
    run.add_argument("--redis-url")
    run.add_argument("--node-id")
    run.add_argument("--static-dir", type=Path)
    run.set_defaults(func=serve)

    tok = sub.add_parser("token", help="print a signed access token")
    tok.add_argument("--classroom", required=True)
    tok.add_argument("--role", required=True, choices=[r.value for r in Role])
    tok.add_argument("--user")
    tok.add_argument("--name")
    tok.add_argument("--ttl", type=int, default=12 * 3600)
    tok.add_argument("--data-dir", type=Path)
    tok.set_defaults(func=token)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
