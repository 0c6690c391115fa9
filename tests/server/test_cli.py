"""The operator's side: plain one-line startup errors, help text, secrets, accounts."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from server.accounts import Directory
from server.auth import verify
from server.cli import build_parser
from server.db import make_engine

PASSWORD = "correct horse battery"


def inkroom(
    *args: str, cwd: Path | None = None, stdin: str | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("INKROOM_")}
    environment.update(env)
    return subprocess.run(
        [sys.executable, "-m", "server.cli", *args],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env={**environment, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
        check=False,
    )


def _one_plain_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, text
    assert "Traceback" not in text
    return lines[0]


def test_every_option_has_help_text() -> None:
    parser = build_parser()
    missing = []

    def walk(p: object, path: str) -> None:
        for action in p._actions:  # type: ignore[attr-defined]
            if action.dest == "help":
                continue
            if hasattr(action, "choices") and isinstance(action.choices, dict):
                for name, child in action.choices.items():
                    walk(child, f"{path} {name}")
                continue
            if action.option_strings and not action.help:
                missing.append(f"{path} {action.option_strings[0]}")

    walk(parser, "inkroom")
    assert missing == []


def test_serve_on_a_taken_port_says_so_in_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = inkroom(
            "serve", "--port", str(port), "--data-dir", str(tmp_path), INKROOM_LOG_JSON="false"
        )
    assert result.returncode != 0
    line = _one_plain_line(result.stderr)
    assert f"port {port} on 127.0.0.1 is already in use" in line
    assert "--port" in line
    assert "inkroom ready" not in result.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_serve_with_an_unwritable_data_dir_says_so_in_one_line(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    result = inkroom("serve", "--data-dir", str(locked / "data"))
    assert result.returncode != 0
    assert str(locked / "data") in _one_plain_line(result.stderr)


def test_serve_with_a_data_dir_that_is_a_file_says_so_in_one_line(tmp_path: Path) -> None:
    # Runs as root too (root can write anywhere, but not into a file).
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    result = inkroom("serve", "--data-dir", str(blocker / "data"))
    assert result.returncode != 0
    line = _one_plain_line(result.stderr)
    assert str(blocker / "data") in line
    assert "--data-dir" in line


def test_serve_with_a_bad_static_dir_says_so(tmp_path: Path) -> None:
    result = inkroom("serve", "--data-dir", str(tmp_path), "--static-dir", str(tmp_path / "nope"))
    assert result.returncode != 0
    assert "has no index.html" in _one_plain_line(result.stderr)


def test_token_from_another_directory_does_not_invent_a_secret(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = inkroom("token", "--classroom", "c1", "--role", "tutor", cwd=elsewhere)
    assert result.returncode != 0
    line = _one_plain_line(result.stderr)
    assert "no secret at" in line
    assert "--data-dir" in line
    assert "INKROOM_SECRET" in line
    assert not (elsewhere / "data").exists(), "no data dir, no secret was created"
    # With the server's data dir it works, and the token verifies with that secret.
    data = tmp_path / "data"
    data.mkdir()
    (data / "secret.key").write_text("s" * 64)
    ok = inkroom("token", "--classroom", "c1", "--role", "tutor", "--data-dir", str(data))
    assert ok.returncode == 0, ok.stderr
    assert verify("s" * 64, ok.stdout.strip()).classroom == "c1"
    # Two student tokens without --user are two people, not one.
    a, b = (
        inkroom("token", "--classroom", "c1", "--role", "student", "--data-dir", str(data))
        for _ in range(2)
    )
    assert verify("s" * 64, a.stdout.strip()).user_id != verify("s" * 64, b.stdout.strip()).user_id


def test_user_add_and_set_password(tmp_path: Path) -> None:
    data = str(tmp_path)
    added = inkroom(
        "user",
        "add",
        "--email",
        "Root@Example.org",
        "--role",
        "admin",
        "--password-stdin",
        "--data-dir",
        data,
        stdin=PASSWORD + "\n",
    )
    assert added.returncode == 0, added.stderr
    assert "added admin root@example.org" in added.stdout
    again = inkroom(
        "user",
        "add",
        "--email",
        "root@example.org",
        "--password-stdin",
        "--data-dir",
        data,
        stdin=PASSWORD + "\n",
    )
    assert again.returncode != 0
    assert "already exists" in _one_plain_line(again.stderr)
    weak = inkroom(
        "user",
        "add",
        "--email",
        "t@example.org",
        "--password-stdin",
        "--data-dir",
        data,
        stdin="short\n",
    )
    assert weak.returncode != 0
    assert "8 characters" in weak.stderr

    engine = make_engine(f"sqlite:///{tmp_path / 'inkroom.db'}")
    directory = Directory(engine)
    account = directory.authenticate("root@example.org", PASSWORD)
    assert account is not None
    assert account.role == "admin"
    session = directory.open_session(account)

    changed = inkroom(
        "user",
        "set-password",
        "--email",
        "root@example.org",
        "--password-stdin",
        "--data-dir",
        data,
        stdin="a new long password\n",
    )
    assert changed.returncode == 0, changed.stderr
    assert directory.authenticate("root@example.org", PASSWORD) is None
    assert directory.authenticate("root@example.org", "a new long password") is not None
    assert directory.session_account(session) is None, "set-password signs out everywhere"
    unknown = inkroom(
        "user",
        "set-password",
        "--email",
        "who@example.org",
        "--password-stdin",
        "--data-dir",
        data,
        stdin=PASSWORD + "\n",
    )
    assert unknown.returncode != 0
    listed = inkroom("user", "list", "--data-dir", data)
    assert "root@example.org\tadmin" in listed.stdout
    engine.dispose()


def test_ready_is_logged_only_once_the_port_answers(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    environment = {k: v for k, v in os.environ.items() if not k.startswith("INKROOM_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "server.cli", "serve", "--port", str(port)],
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        text=True,
        env={**environment, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    try:
        assert process.stderr is not None
        for line in process.stderr:
            if "inkroom ready" in line:
                break
        else:
            raise AssertionError("the server never logged ready")
        # At the moment "ready" is printed, the port is already bound and listening.
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            pass
        assert (tmp_path / "data" / "secret.key").is_file()
    finally:
        process.terminate()
        process.wait(timeout=20)
        if process.stderr is not None:
            process.stderr.close()


def test_serve_raises_the_open_files_limit_toward_what_10k_connections_need() -> None:
    import resource

    from server.cli import raise_file_limit

    before = resource.getrlimit(resource.RLIMIT_NOFILE)
    if before[1] != resource.RLIM_INFINITY and before[1] <= 10_000:
        pytest.skip(f"this machine's hard limit is {before[1]} open files")
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (1024, before[1]))
        soft, hard = raise_file_limit(wanted=min(20_000, before[1]))
        assert soft == min(20_000, before[1]) > 10_000
        assert resource.getrlimit(resource.RLIMIT_NOFILE) == (soft, hard)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, before)
