"""``pip install .`` into a fresh virtual environment, then ``inkroom serve`` from it serves
the classroom page and its script, with no flag and nothing from this checkout.

Honest: the venv has no system site packages, and every dependency is resolved and
installed into it by pip, so a dependency missing from pyproject.toml fails here. Quick:
the venv is made without its own pip (the running pip installs into it with
``--python``), pip's wheel cache serves the dependencies after the first run, and nothing
is byte-compiled up front (a third of the install's time; the server compiles what it
imports).
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _get(url: str) -> tuple[int, str, bytes]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status, response.headers.get("content-type", ""), response.read()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_pip_install_then_serve_the_classroom_page_and_its_script(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INKROOM_", "PYTHON"))}
    env.pop("VIRTUAL_ENV", None)
    installed = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--quiet",
            "--no-compile",
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        check=False,
    )
    assert installed.returncode == 0, installed.stderr[-3000:]
    where = subprocess.run(
        [str(python), "-c", "import server; print(server.__file__)"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout
    assert where.startswith(str(venv)), f"server imported from {where}, not from the venv"

    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    with open(tmp_path / "serve.log", "wb") as log:
        process = subprocess.Popen(
            [str(venv / "bin" / "inkroom"), "serve", "--port", str(port)],
            cwd=tmp_path,  # the data dir lands here; nothing of the checkout is reachable
            env=env,
            stderr=log,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if _get(f"{base}/readyz")[0] == 200:
                    break
            except OSError:
                pass
            assert process.poll() is None, (tmp_path / "serve.log").read_text()
            assert time.monotonic() < deadline, "inkroom serve did not become ready"
            time.sleep(0.1)
        status, kind, page = _get(f"{base}/c/algebra-1")
        assert (status, kind.split(";")[0]) == (200, "text/html")
        scripts = re.findall(rb'<script[^>]+src="(/assets/[^"]+\.js)"', page)
        assert scripts, page[:500]
        status, kind, script = _get(base + scripts[0].decode())
        assert status == 200
        assert "javascript" in kind
        # The entry script loads the classroom page's own chunk: served too, and it is
        # the board (yjs and all), not a stub.
        chunks = re.findall(rb"classroom-page-[A-Za-z0-9_-]+\.js", script)
        assert chunks, script[:500]
        status, kind, board = _get(f"{base}/assets/{chunks[0].decode()}")
        assert status == 200
        assert "javascript" in kind
        assert len(board) > 50_000
        for path in ("/", "/j/some-code"):
            status, _, same = _get(base + path)
            assert (status, same) == (200, page)
    finally:
        process.terminate()
        process.wait(timeout=20)
