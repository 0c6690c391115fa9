"""Ships the built web client inside the ``server`` package (``server/web``).

``pip install .`` (and ``python -m build``) runs ``build_py``, which copies
``frontend/dist`` into the package, building it first with npm when it is missing or
older than its sources. Editable installs skip this: they serve ``frontend/dist`` from the
checkout (``server/routes/client.py``).

Set ``INKROOM_SKIP_CLIENT=1`` to package the server without a web client.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
FRONTEND = ROOT / "frontend"
DIST = FRONTEND / "dist"
SOURCES = ("src", "public", "index.html", "package-lock.json", "vite.config.ts", "tsconfig.json")


def _newest(path: Path) -> float:
    if path.is_file():
        return path.stat().st_mtime
    return max((p.stat().st_mtime for p in path.rglob("*") if p.is_file()), default=0.0)


def client_is_stale() -> bool:
    index = DIST / "index.html"
    if not index.is_file():
        return True
    built = index.stat().st_mtime
    return any(_newest(FRONTEND / name) > built for name in SOURCES if (FRONTEND / name).exists())


def build_client() -> None:
    npm = shutil.which("npm")
    if npm is None:
        raise SystemExit(
            "inkroom: the web client is not built and npm is missing: install Node >= 20.19 "
            "and npm, run scripts/frontend, or set INKROOM_SKIP_CLIENT=1"
        )
    if not (FRONTEND / "node_modules" / ".bin" / "vite").exists():
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=FRONTEND, check=True
        )
    subprocess.run([npm, "run", "build", "--silent"], cwd=FRONTEND, check=True)


class BuildWithClient(build_py):
    def run(self) -> None:
        editable = getattr(self, "editable_mode", False)
        if not editable:
            # The build dir persists between in-tree builds: a module deleted from the
            # source must not live on in the next wheel.
            for package in ("server", "collab", "sfu", "billing"):
                shutil.rmtree(Path(self.build_lib) / package, ignore_errors=True)
        super().run()
        if editable or os.environ.get("INKROOM_SKIP_CLIENT") == "1":
            return
        if not (FRONTEND / "package.json").is_file():
            return  # building from an sdist without the client sources
        if client_is_stale():
            build_client()
        target = Path(self.build_lib) / "server" / "web"
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(DIST, target)


setup(cmdclass={"build_py": BuildWithClient})
