"""``inkroom admin export|import|history|compact DOCUMENT``: the operator's inspector.

Works on the database directly (the server may be running: the log is append-only and
every command is one transaction per step). An import is appended to the log as one
server-authored update; a server that holds the document loaded sees it on its next load,
so for a live document prefer ``POST /api/admin/import/DOCUMENT``.
Long walks over the log show a progress bar (rich, on stderr).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pycrdt import Doc
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from collab.adapters.sql_store import SqlStore
from collab.content import (
    data_kinds,
    forward_change,
    from_data,
    from_update,
    shared_paths,
    to_data,
)
from collab.ports import MAX_HISTORY_PAGE, DocumentName, StoredUpdate

from .auth import Claims, Role, authorize
from .errors import Forbidden

AUTHOR = "admin-cli"


def progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        transient=True,
        console=Console(stderr=True),
        redirect_stdout=False,
        redirect_stderr=False,
    )


def document_name(raw: str) -> DocumentName:
    try:
        authorize(Claims("admin", "", "admin", Role.ADMIN, 0), raw)
    except Forbidden as exc:
        raise ValueError(f"invalid document name {raw!r}") from exc
    return DocumentName(raw)


def _time(raw: str | None) -> datetime | None:
    if raw is None:
        return None
    try:
        return datetime.fromisoformat(raw)
    except ValueError as exc:
        raise ValueError(f"not an ISO 8601 time: {raw!r}") from exc


async def _count(store: SqlStore, name: DocumentName, **filters: Any) -> int:
    contributions = await store.contributions(
        name, since=filters.get("since"), until=filters.get("until")
    )
    author = filters.get("author")
    return sum(c.updates for c in contributions if author is None or c.author == author)


async def history(store: SqlStore, name: DocumentName, args: argparse.Namespace) -> int:
    filters = {"author": args.author, "since": _time(args.since), "until": _time(args.until)}
    total = await _count(store, name, **filters)
    if args.limit is not None:
        total = min(total, args.limit)
    out = sys.stdout
    shown, after = 0, 0
    with progress() as bar:
        task = bar.add_task(f"history of {name}", total=total)
        while shown < total:
            page = await store.history(
                name, after=after, limit=min(MAX_HISTORY_PAGE, total - shown), **filters
            )
            for e in page.entries:
                author = e.author or "(server)"
                out.write(f"{e.seq}\t{e.created_at.isoformat()}\t{author}\t{e.size}\n")
            shown += len(page.entries)
            bar.update(task, completed=shown)
            if page.next_after is None:
                break
            after = page.next_after
    return 0


async def export(store: SqlStore, name: DocumentName, args: argparse.Namespace) -> int:
    loaded = await store.load(name)
    doc: Doc[Any] = Doc()
    with progress() as bar:
        task = bar.add_task(f"replaying {name}", total=len(loaded.tail) + 1)
        with doc.transaction():
            if loaded.snapshot is not None:
                doc.apply_update(loaded.snapshot)
            bar.advance(task)
            for update in loaded.tail:
                doc.apply_update(update)
                bar.advance(task)
    data = (
        json.dumps(
            {"document": name, "content": to_data(doc), "shared": shared_paths(doc)}, indent=2
        ).encode()
        if args.json
        else doc.get_update()
    )
    if args.output is None or str(args.output) == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    else:
        await asyncio.to_thread(args.output.write_bytes, data)
        print(f"exported {name}: {len(data)} bytes to {args.output}", file=sys.stderr)
    return 0


def _read(file: str) -> bytes:
    return sys.stdin.buffer.read() if file == "-" else Path(file).read_bytes()


async def import_(store: SqlStore, name: DocumentName, args: argparse.Namespace) -> int:
    data = await asyncio.to_thread(_read, str(args.file))
    if args.json or str(args.file).endswith(".json"):
        data = await _json_change(store, name, data, str(args.file))
        if not data:
            print(f"{name} already holds that content; nothing imported", file=sys.stderr)
            return 0
    try:
        from_update(data)
    except ValueError as exc:
        raise ValueError(f"{args.file} is not a Yjs update") from exc
    await store.append({name: [StoredUpdate(data, AUTHOR, datetime.now(UTC))]})
    print(f"imported {len(data)} bytes into {name}", file=sys.stderr)
    return 0


async def _json_change(store: SqlStore, name: DocumentName, raw: bytes, file: str) -> bytes:
    """The forward change that makes the stored document's content the JSON file's (as
    written by ``export --json``); empty when it already is. Raises ``ValueError``."""
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise ValueError(f"{file} is not JSON: {str(exc)[:120]}") from exc
    if not isinstance(body, dict) or "content" not in body:
        raise ValueError(f'{file}: expected {{"content": {{root: data}}, "shared": [paths]?}}')
    try:
        target = from_data(body["content"], body.get("shared"))
    except ValueError as exc:
        raise ValueError(f"{file}: {exc}") from exc
    current = (await store.load(name)).to_doc()
    return forward_change(current.get_update(), target, data_kinds(body["content"]))


async def compact(store: SqlStore, name: DocumentName, args: argparse.Namespace) -> int:
    with progress() as bar:
        bar.add_task(f"compacting {name}", total=None)
        await store.compact(name)
    print(f"compacted {name}", file=sys.stderr)
    return 0


COMMANDS: dict[str, Callable[[SqlStore, DocumentName, argparse.Namespace], Any]] = {
    "history": history,
    "export": export,
    "import": import_,
    "compact": compact,
}


def run(args: argparse.Namespace, engine_for: Callable[[], Any]) -> int:
    """Runs one ``inkroom admin`` command; ``ValueError`` and ``OSError`` become one line."""
    try:
        name = document_name(args.document)
        engine = engine_for()
    except (ValueError, OSError) as exc:
        print(f"inkroom admin {args.admin_command}: {exc}", file=sys.stderr)
        return 1
    try:
        result: int = asyncio.run(COMMANDS[args.admin_command](SqlStore(engine), name, args))
        return result
    except (ValueError, OSError) as exc:
        print(f"inkroom admin {args.admin_command}: {exc}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()


def add_parser(sub: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    adm = sub.add_parser("admin", help="inspect stored documents (export, import, history)")
    adm_sub = adm.add_subparsers(dest="admin_command", required=True, metavar="ACTION")

    def command(name: str, help: str) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = adm_sub.add_parser(name, help=help)
        p.add_argument("document", metavar="DOCUMENT", help="e.g. c1/board")
        common(p)
        return p

    exp = command("export", "write a document as a Yjs update (or --json)")
    exp.add_argument("-o", "--output", type=Path, help="file to write (default stdout)")
    exp.add_argument("--json", action="store_true", help="the content as JSON instead")
    imp = command("import", "merge a Yjs update (or a .json export) into a document")
    imp.add_argument("file", help="the update or .json file, or - for stdin")
    imp.add_argument("--json", action="store_true", help="the file is JSON (export --json)")
    his = command("history", "list logged updates: seq, time, author, size")
    his.add_argument("--author", help="only this author's updates")
    his.add_argument("--since", help="from this ISO 8601 time")
    his.add_argument("--until", help="up to this ISO 8601 time")
    his.add_argument("--limit", type=int, help="at most this many entries")
    command("compact", "fold the log's tail into a new snapshot")
