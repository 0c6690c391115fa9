"""``inkroom admin export|import|history|compact`` on a real SQLite data dir."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pycrdt import Doc, Map

from collab.adapters.sql_store import SqlStore
from collab.ports import DocumentName, StoredUpdate
from server.db import make_engine, migrate

from .test_cli import inkroom

NAME = DocumentName("c1/board")


def seed(data_dir: Path, n: int) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(f"sqlite:///{(data_dir / 'inkroom.db').resolve()}")
    migrate(engine)
    doc: Doc[Any] = Doc()
    out: list[bytes] = []
    doc.observe(lambda e: out.append(e.update))
    shapes = doc.get("shapes", type=Map)
    for i in range(n):
        shapes[f"s{i}"] = i
    now = datetime.now(UTC)
    entries = [StoredUpdate(u, "ada" if i % 2 else "bo", now) for i, u in enumerate(out)]
    asyncio.run(SqlStore(engine).append({NAME: entries}))
    engine.dispose()


def test_history_export_import_compact(tmp_path: Path) -> None:
    data = tmp_path / "data"
    seed(data, 30)
    d = ["--data-dir", str(data)]
    listed = inkroom("admin", "history", "c1/board", "--author", "ada", *d)
    assert listed.returncode == 0, listed.stderr
    rows = [line.split("\t") for line in listed.stdout.splitlines()]
    assert len(rows) == 15
    assert {r[2] for r in rows} == {"ada"}
    assert [int(r[0]) for r in rows] == list(range(2, 31, 2))
    limited = inkroom("admin", "history", "c1/board", "--limit", "4", *d)
    assert len(limited.stdout.splitlines()) == 4

    as_json = inkroom("admin", "export", "c1/board", "--json", *d)
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout)["content"]["shapes"]["s29"] == 29
    out = tmp_path / "board.yjs"
    assert inkroom("admin", "export", "c1/board", "-o", str(out), *d).returncode == 0
    imported = inkroom("admin", "import", "c2/board", str(out), *d)
    assert imported.returncode == 0, imported.stderr
    copy = json.loads(inkroom("admin", "export", "c2/board", "--json", *d).stdout)
    assert copy["content"]["shapes"] == {f"s{i}": i for i in range(30)}
    history = inkroom("admin", "history", "c2/board", *d).stdout.split("\t")
    assert history[2] == "admin-cli"

    assert inkroom("admin", "compact", "c1/board", *d).returncode == 0
    again = json.loads(inkroom("admin", "export", "c1/board", "--json", *d).stdout)
    assert again["content"]["shapes"] == copy["content"]["shapes"]


def test_bad_input_is_one_plain_line(tmp_path: Path) -> None:
    d = ["--data-dir", str(tmp_path / "data")]
    bad = inkroom("admin", "history", "c1/a b", *d)
    assert bad.returncode == 1
    assert bad.stderr.strip() == "inkroom admin history: invalid document name 'c1/a b'"
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\xff\xff\xff")
    wrong = inkroom("admin", "import", "c1/board", str(junk), *d)
    assert wrong.returncode == 1
    assert wrong.stderr.strip() == f"inkroom admin import: {junk} is not a Yjs update"
    when = inkroom("admin", "history", "c1/board", "--since", "monday", *d)
    assert when.stderr.strip() == "inkroom admin history: not an ISO 8601 time: 'monday'"


def test_import_of_a_json_export_is_a_forward_change_and_malformed_json_changes_nothing(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    seed(data, 5)
    d = ["--data-dir", str(data)]
    exported = tmp_path / "board.json"
    assert inkroom("admin", "export", "c1/board", "--json", "-o", str(exported), *d).returncode == 0
    body = json.loads(exported.read_text())
    body["content"]["shapes"] = {"s0": 0, "ink": {"t": "ink", "pts": [1, 2]}}
    body["shared"] = [["shapes", "ink"], ["shapes", "ink", "pts"]]
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(body))
    imported = inkroom("admin", "import", "c1/board", str(edited), *d)
    assert imported.returncode == 0, imported.stderr
    after = json.loads(inkroom("admin", "export", "c1/board", "--json", *d).stdout)
    assert after["content"]["shapes"] == body["content"]["shapes"]
    assert after["shared"] == body["shared"]
    rows = inkroom("admin", "history", "c1/board", *d).stdout.splitlines()
    assert len(rows) == 6  # the log only grew, by one update
    assert rows[-1].split("\t")[2] == "admin-cli"
    # The same file again: nothing to change, nothing appended.
    assert "nothing imported" in inkroom("admin", "import", "c1/board", str(edited), *d).stderr
    assert len(inkroom("admin", "history", "c1/board", *d).stdout.splitlines()) == 6
    # A file that only removes (a shape gone) is a change too.
    del body["content"]["shapes"]["s0"]
    edited.write_text(json.dumps(body))
    assert inkroom("admin", "import", "c1/board", str(edited), *d).returncode == 0
    after = json.loads(inkroom("admin", "export", "c1/board", "--json", *d).stdout)
    assert "s0" not in after["content"]["shapes"]
    assert len(inkroom("admin", "history", "c1/board", *d).stdout.splitlines()) == 7
    # Malformed: one plain line, nothing appended.
    broken = tmp_path / "broken.json"
    broken.write_text('{"content": {"shapes": 3}}')
    refused = inkroom("admin", "import", "c1/board", str(broken), *d)
    assert refused.returncode == 1
    assert refused.stderr.strip() == (
        f"inkroom admin import: {broken}: root 'shapes' must be an object, an array or a string"
    )
    assert len(inkroom("admin", "history", "c1/board", *d).stdout.splitlines()) == 7
