"""The web client: the same single-page shell at ``/``, ``/c/{C}`` and ``/j/{code}``,
and its assets, from the directory ``client_dir`` picks."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response

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
