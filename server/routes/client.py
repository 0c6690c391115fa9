"""The web client: the same single-page shell at ``/``, ``/c/{C}`` and ``/j/{code}``,
and its assets, from the directory ``client_dir`` picks."""

from __future__ import annotations

import mimetypes
import os
import stat
from collections.abc import Awaitable, Callable
from pathlib import Path

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

PACKAGED = Path(__file__).resolve().parent.parent / "web"
# An editable install (or a checkout) runs from the source tree: the Vite build is here.
SOURCE_BUILD = Path(__file__).resolve().parents[2] / "frontend" / "dist"

NOT_BUILT = """<!doctype html><meta charset="utf-8"><title>Inkroom</title>
<body style="font-family:system-ui;max-width:36em;margin:15vh auto;padding:0 16px">
<h1>Inkroom</h1><p>The server is running, but this installation has no web client.
Build it with <code>scripts/frontend</code> (or install the package with
<code>pip install .</code>, which builds it), or start the server with
<code>--static-dir</code> pointing at a built client.</p></body>"""


def client_dir(override: Path | None) -> Path | None:
    """``--static-dir`` if given, else the client shipped in the package, else a source
    build next to the package; ``None`` when there is none."""
    for candidate in (override, PACKAGED, SOURCE_BUILD):
        if candidate is not None and (candidate / "index.html").is_file():
            return candidate
    return None


def shell(directory: Path | None) -> Callable[[Request], Awaitable[Response]]:
    index = directory / "index.html" if directory else None

    async def page(request: Request) -> Response:
        if index is None or not index.is_file():
            return HTMLResponse(NOT_BUILT, status_code=503)
        # Never cached: a new release must reach everyone on their next load.
        return FileResponse(index, headers={"Cache-Control": "no-cache"})

    return page


IMMUTABLE = "public, max-age=31536000, immutable"
# The service worker and the manifest must be re-checked on every start, or a deploy
# never reaches an installed app; icons change rarely.
REVALIDATE = {"sw.js", "manifest.webmanifest", "index.html"}
ENCODINGS = (("br", ".br"), ("gzip", ".gz"))


class ClientFiles(StaticFiles):
    """The built client's files, with caching and precompressed assets.

    ``assets/`` holds files whose names carry a content hash (Vite): they never change,
    so they are cached for a year, and sent as the ``.br`` or ``.gz`` file the build wrote
    beside each one when the browser accepts it. The service worker and the manifest are
    revalidated on every load.
    """

    async def get_response(self, path: str, scope: Scope) -> Response:
        asset = path.startswith("assets" + os.sep)
        response: Response | None = None
        if asset and scope["method"] in ("GET", "HEAD"):
            response = await self._precompressed(path, scope)
        if response is None:
            response = await super().get_response(path, scope)
        if response.status_code in (200, 304):
            name = os.path.basename(path)
            if asset:
                response.headers["Cache-Control"] = IMMUTABLE
                response.headers["Vary"] = "Accept-Encoding"
            elif name in REVALIDATE:
                response.headers["Cache-Control"] = "no-cache"
            else:
                response.headers["Cache-Control"] = "public, max-age=86400"
        return response

    async def _precompressed(self, path: str, scope: Scope) -> Response | None:
        accepted = _accepted_encodings(Headers(scope=scope).get("accept-encoding", ""))
        for encoding, suffix in ENCODINGS:
            if encoding not in accepted:
                continue
            full, found = await run_in_threadpool(self.lookup_path, path + suffix)
            if found is not None and stat.S_ISREG(found.st_mode):
                media_type = mimetypes.guess_type(path)[0] or "application/octet-stream"
                return FileResponse(
                    full,
                    stat_result=found,
                    media_type=media_type,
                    headers={"Content-Encoding": encoding},
                )
        return None


def _accepted_encodings(header: str) -> set[str]:
    accepted = set()
    for part in header.split(","):
        token, _, params = part.strip().partition(";")
        if params.strip().replace(" ", "") in ("q=0", "q=0.0", "q=0.00", "q=0.000"):
            continue
        if token:
            accepted.add(token.strip().lower())
    return accepted
