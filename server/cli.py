"""``inkroom serve``, ``inkroom token``, ``inkroom user`` and ``inkroom admin``.

Operator errors (a data dir that cannot be written, a port in use, a database that does
not answer, no secret) end with one plain line on stderr saying what, where and what to
do, and a non-zero exit status; never a traceback.
"""

from __future__ import annotations

import argparse
import errno
import gc
import getpass
import logging
import os
import secrets
import socket
import sys
from collections.abc import Sequence
from pathlib import Path

from .auth import Role, issue
from .settings import Settings

log = logging.getLogger("inkroom.server.cli")

EXIT_USAGE = 2
EXIT_FAILURE = 1


class StartupError(Exception):
    """What went wrong, in one line an operator can act on."""


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {
        k: v
        for k, v in {
            "host": getattr(args, "host", None),
            "port": getattr(args, "port", None),
            "data_dir": getattr(args, "data_dir", None),
            "database_url": getattr(args, "database_url", None),
            "redis_url": getattr(args, "redis_url", None),
            "node_id": getattr(args, "node_id", None),
            "static_dir": getattr(args, "static_dir", None),
            "public_url": getattr(args, "public_url", None),
        }.items()
        if v is not None
    }
    return Settings(**overrides)


def _fail(command: str, message: str, status: int = EXIT_FAILURE) -> int:
    print(f"inkroom {command}: {message}", file=sys.stderr)
    return status


def check_data_dir(settings: Settings) -> None:
    """The data dir exists (created if needed) and is writable, unless a database URL
    means it only holds the secret, which then must be readable."""
    path = settings.data_dir.resolve()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StartupError(
            f"cannot create the data directory {path} ({exc.strerror}); "
            "pick another with --data-dir or fix its permissions"
        ) from None
    probe = path / ".inkroom-write-check"
    try:
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise StartupError(
            f"cannot write to the data directory {path} ({exc.strerror}); "
            "pick another with --data-dir or fix its permissions"
        ) from None


def check_static_dir(settings: Settings) -> None:
    if settings.static_dir is not None and not (settings.static_dir / "index.html").is_file():
        raise StartupError(
            f"--static-dir {settings.static_dir.resolve()} has no index.html; build the "
            "client (scripts/frontend) or leave the option out to use the packaged one"
        )


def bind(host: str, port: int) -> socket.socket:
    """Binds the listening socket before anything starts, so "ready" means reachable."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise StartupError(
                f"port {port} on {host} is already in use; stop what uses it or pick "
                "another with --port"
            ) from None
        if exc.errno == errno.EACCES:
            raise StartupError(
                f"not allowed to listen on port {port} on {host}; use a port above 1023"
            ) from None
        raise StartupError(f"cannot listen on {host}:{port} ({exc.strerror})") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def check_database(settings: Settings) -> None:
    from sqlalchemy.exc import SQLAlchemyError

    from .db import make_engine, migrate

    try:
        engine = make_engine(settings.sql_url)
        try:
            migrate(engine)
        finally:
            engine.dispose()
    except (SQLAlchemyError, OSError) as exc:
        where = (
            settings.database_url.split("@")[-1]
            if settings.database_url
            else str((settings.data_dir / "inkroom.db").resolve())
        )
        detail = str(getattr(exc, "orig", None) or exc).splitlines()[0][:200]
        raise StartupError(
            f"cannot open the database at {where} ({detail}); check --database-url, "
            "that the database is running, and its permissions"
        ) from None


# Every connection is a file descriptor. Distributions start services with a soft limit
# of 1,024 (systemd: 1,024 soft / 524,288 hard); a node that holds 10,000 classroom
# connections needs more, and an unprivileged process may raise its soft limit up to the
# hard one itself.
WANTED_FILES = 65_536
NEEDED_FILES = 10_240  # 10,000 connections plus the database, logs and listeners


def raise_file_limit(wanted: int = WANTED_FILES) -> tuple[int, int]:
    """Raises the soft limit on open files toward ``wanted`` (at most the hard limit);
    returns (soft, hard) after. Warns when even that is below what 10,000 connections
    need."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:
            log.warning("could not raise the open-files limit: %s", exc)
    if soft != resource.RLIM_INFINITY and soft < NEEDED_FILES:
        log.warning(
            "open files limited to %d: at most about %d connections; raise the hard limit "
            "(systemd LimitNOFILE=%d, docker --ulimit nofile=%d)",
            soft,
            soft - 100,
            wanted,
            wanted,
        )
    return soft, hard


# The young generation is collected every 20,000 allocations, not 700: a connection's
# objects live as long as it does, and at 700 the collector ran several times per accept.
GC_THRESHOLDS = (20_000, 20, 20)


def tune_collector() -> None:
    """What start-up made (every module, the app) lives as long as the process: frozen, out
    of the collector's sight, so that a full collection walks only what rooms and
    connections made. Collections were a third of accepting a connection (py-spy)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def serve(args: argparse.Namespace) -> int:
    from . import logs
    from .routes.client import client_dir

    settings = _settings(args)
    logs.configure(settings.log_level, json_lines=settings.log_json)
    raise_file_limit()
    try:
        check_static_dir(settings)
        check_data_dir(settings)
        sock = bind(settings.host, settings.port)
    except StartupError as exc:
        return _fail("serve", str(exc))
    try:
        try:
            settings.signing_secret()
        except (RuntimeError, OSError) as exc:
            raise StartupError(str(exc)) from None
        check_database(settings)
    except StartupError as exc:
        sock.close()
        return _fail("serve", str(exc))
    if client_dir(settings.static_dir) is None:
        print("inkroom: no web client in this installation (see scripts/frontend)", file=sys.stderr)
    # Imported once the checks have passed: a mistake is reported without waiting for
    # the whole application to load (0.8 s).
    import uvicorn

    from .app import create_app
    from .http_protocol import QuietServer, uvicorn_options
    from .ws_protocol import InkroomWebSocketProtocol

    config = uvicorn.Config(
        create_app(settings),
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
    server = QuietServer(config)
    tune_collector()
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    return 0 if server.started else EXIT_FAILURE


def token(args: argparse.Namespace) -> int:
    settings = _settings(args)
    secret = settings.existing_secret()
    if secret is None:
        return _fail(
            "token",
            f"no secret at {settings.secret_path().resolve()}: run this where `inkroom serve` "
            "keeps its data (--data-dir DIR), or set INKROOM_SECRET to the server's secret",
        )
    # Students and observers get a user id of their own unless one is given: two people
    # sharing one id would show as one in the roster. A tutor's default id is stable.
    role = Role(args.role)
    if args.user:
        user = args.user
    elif role in (Role.STUDENT, Role.OBSERVER):
        user = f"{role.value}-{secrets.token_hex(4)}"
    else:
        user = f"{role.value}-{args.classroom}"
    try:
        value = issue(
            secret,
            classroom=args.classroom,
            role=role,
            user_id=user,
            name=args.name or user,
            ttl=args.ttl,
        )
    except ValueError as exc:
        return _fail("token", str(exc), EXIT_USAGE)
    print(value)
    return 0


def _password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    env = os.environ.get("INKROOM_PASSWORD")
    if env:
        return env
    if not sys.stdin.isatty():
        raise StartupError("no password: pass --password-stdin, or run in a terminal")
    first = getpass.getpass("Password: ")
    if first != getpass.getpass("Password again: "):
        raise StartupError("the two passwords differ")
    return first


def user(args: argparse.Namespace) -> int:
    from .accounts import AccountError, Directory
    from .db import make_engine

    settings = _settings(args)
    try:
        check_data_dir(settings)
        check_database(settings)
    except StartupError as exc:
        return _fail("user", str(exc))
    engine = make_engine(settings.sql_url)
    directory = Directory(engine)
    try:
        if args.user_command == "list":
            for a in directory.accounts():
                print(f"{a.email}\t{a.role}\t{a.name}")
            return 0
        if args.user_command == "add":
            account = directory.create_account(
                args.email, _password(args), role=args.role, name=args.name or ""
            )
            print(f"added {account.role} {account.email}")
            return 0
        if args.user_command == "set-password":
            account = directory.set_password(args.email, _password(args))
            print(f"password set for {account.email}; its sessions were signed out")
            return 0
        if args.user_command == "set-role":
            account = directory.set_role(args.email, args.role)
            print(f"{account.email} is now {account.role}")
            return 0
    except (AccountError, StartupError) as exc:
        return _fail("user", str(exc))
    finally:
        engine.dispose()
    return EXIT_USAGE


def admin(args: argparse.Namespace) -> int:
    from . import admin_cli
    from .db import make_engine, migrate

    settings = _settings(args)

    def engine() -> object:
        try:
            check_data_dir(settings)
            check_database(settings)
        except StartupError as exc:
            raise OSError(str(exc)) from exc
        made = make_engine(settings.sql_url)
        migrate(made)
        return made

    return admin_cli.run(args, engine)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data-dir",
        type=Path,
        metavar="DIR",
        help="where the SQLite database and the secret live (default ./data; env INKROOM_DATA_DIR)",
    )
    p.add_argument(
        "--database-url",
        metavar="URL",
        help="postgresql://... instead of SQLite in the data dir (env INKROOM_DATABASE_URL)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="inkroom",
        description="Inkroom classroom server. Every option is also an INKROOM_* "
        "environment variable.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser(
        "serve",
        help="run the server (SQLite under the data dir by default)",
        description="Runs the server: the web client at /, the API under /api, "
        "WebSockets under /ws.",
    )
    run.add_argument("--host", help="address to listen on (default 127.0.0.1; env INKROOM_HOST)")
    run.add_argument("--port", type=int, help="port to listen on (default 8000; env INKROOM_PORT)")
    _common(run)
    run.add_argument(
        "--redis-url",
        metavar="URL",
        help="redis://... to run as one of several nodes (docs/deploy.md; env INKROOM_REDIS_URL)",
    )
    run.add_argument(
        "--node-id",
        metavar="ID",
        help="this node's id on the bus (default: generated; env INKROOM_NODE_ID)",
    )
    run.add_argument(
        "--static-dir",
        type=Path,
        metavar="DIR",
        help="serve the web client from this built directory instead of the packaged one",
    )
    run.add_argument(
        "--public-url",
        metavar="URL",
        help="the address people use, e.g. https://class.example.org: invite links, "
        "allowed Origin, Secure cookies (env INKROOM_PUBLIC_URL)",
    )
    run.set_defaults(func=serve)

    tok = sub.add_parser(
        "token",
        help="print a signed access token (for scripts and tests)",
        description="Prints a signed access token, with the secret of the server's data dir.",
    )
    tok.add_argument("--classroom", required=True, help="the classroom id the token opens")
    tok.add_argument(
        "--role", required=True, choices=[r.value for r in Role], help="the role in the room"
    )
    tok.add_argument(
        "--user",
        help="user id in the room (default: a new one for each student or observer token, "
        "tutor-CLASSROOM or admin-CLASSROOM otherwise)",
    )
    tok.add_argument("--name", help="display name (default: the user id)")
    tok.add_argument(
        "--ttl", type=int, default=12 * 3600, help="lifetime in seconds (default 43200)"
    )
    tok.add_argument(
        "--data-dir",
        type=Path,
        metavar="DIR",
        help="the server's data dir, which holds its secret (default ./data)",
    )
    tok.set_defaults(func=token)

    usr = sub.add_parser("user", help="manage tutor and admin accounts")
    usr_sub = usr.add_subparsers(dest="user_command", required=True, metavar="ACTION")
    add = usr_sub.add_parser("add", help="create an account (asks for its password)")
    add.add_argument("--email", required=True, help="the account's email, used to sign in")
    add.add_argument("--role", choices=["tutor", "admin"], default="tutor", help="default tutor")
    add.add_argument("--name", help="display name in classrooms (default: the email's name)")
    setpw = usr_sub.add_parser(
        "set-password", help="set an account's password and sign it out everywhere"
    )
    setpw.add_argument("--email", required=True, help="the account's email")
    role = usr_sub.add_parser("set-role", help="make an account tutor or admin")
    role.add_argument("--email", required=True, help="the account's email")
    role.add_argument("--role", required=True, choices=["tutor", "admin"], help="the new role")
    usr_sub.add_parser("list", help="list accounts (email, role, name)")
    for p in (add, setpw):
        p.add_argument(
            "--password-stdin",
            action="store_true",
            help="read the password from the first line of stdin (else asked twice, or "
            "env INKROOM_PASSWORD)",
        )
    for p in (add, setpw, role, usr_sub.choices["list"]):
        _common(p)
    usr.set_defaults(func=user)

    from . import admin_cli

    admin_cli.add_parser(sub, _common)
    sub.choices["admin"].set_defaults(func=admin)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result: int = args.func(args)
    except KeyboardInterrupt:
        return 130
    return result


if __name__ == "__main__":
    sys.exit(main())
