"""The built client's files: hashed assets precompressed and cached for good, the rest
revalidated."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.testclient import TestClient

from server.routes.client import IMMUTABLE, ClientFiles

SCRIPT = b"console.log('inkroom');\n" * 200


@pytest.fixture
def client(tmp_path: Path) -> TestClient:
    assets = tmp_path / "assets"
    assets.mkdir()
    (assets / "app-abc123.js").write_bytes(SCRIPT)
    (assets / "app-abc123.js.gz").write_bytes(gzip.compress(SCRIPT))
    (assets / "app-abc123.js.br").write_bytes(b"brotli-bytes")
    (assets / "tiny-def456.js").write_bytes(b"1")
    (tmp_path / "sw.js").write_bytes(b"// worker")
    (tmp_path / "icon-192.png").write_bytes(b"png")
    app = Starlette(routes=[Mount("/", ClientFiles(directory=tmp_path))])
    return TestClient(app)


def test_brotli_when_accepted(client: TestClient) -> None:
    res = client.get("/assets/app-abc123.js", headers={"Accept-Encoding": "gzip, deflate, br"})
    assert res.status_code == 200
    assert res.headers["content-encoding"] == "br"
    assert res.headers["content-type"].startswith("text/javascript")
    assert res.headers["cache-control"] == IMMUTABLE
    assert res.headers["vary"] == "Accept-Encoding"
    assert res.content == b"brotli-bytes"  # the client would decode it; TestClient does not


def test_gzip_when_brotli_is_not_accepted(client: TestClient) -> None:
    res = client.get("/assets/app-abc123.js", headers={"Accept-Encoding": "gzip, br;q=0"})
    assert res.headers["content-encoding"] == "gzip"
    assert res.content == SCRIPT  # decoded by the HTTP client
    assert int(res.headers["content-length"]) < len(SCRIPT) / 5


def test_plain_without_accept_encoding_or_without_a_compressed_form(client: TestClient) -> None:
    res = client.get("/assets/app-abc123.js", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in res.headers
    assert res.content == SCRIPT
    assert res.headers["cache-control"] == IMMUTABLE
    res = client.get("/assets/tiny-def456.js", headers={"Accept-Encoding": "br"})
    assert "content-encoding" not in res.headers
    assert res.content == b"1"


def test_service_worker_is_revalidated_and_missing_files_are_not_cached(
    client: TestClient,
) -> None:
    assert client.get("/sw.js").headers["cache-control"] == "no-cache"
    assert client.get("/icon-192.png").headers["cache-control"] == "public, max-age=86400"
    missing = client.get("/assets/gone-000.js")
    assert missing.status_code == 404
    assert "cache-control" not in missing.headers
