"""A student whose network drops UDP still joins the call, through TURN over TCP.

Made here, torn down here: two network namespaces joined by a veth pair, 192.168.231.1
(the "server" namespace: Inkroom and coturn) and 192.168.231.2 (the "client" namespace,
where nftables drops every outgoing UDP datagram). The tutor publishes from the server
side; the student, in the client namespace, runs the /check diagnosis from Python ("UDP
blocked"), publishes, and decodes the tutor's video, all over TURN/TCP.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pytest

from server.auth import Role, issue
from sfu.check import UDP_BLOCKED

ROOT = Path(__file__).resolve().parents[2]
SECRET = "netns-test-" + "0123456789abcdef" * 4
SERVER_IP, CLIENT_IP = "192.168.231.1", "192.168.231.2"
TOOLS = ("ip", "nft", "turnserver")
LOGS: dict[int, IO[str]] = {}


def _require() -> None:
    missing = [t for t in TOOLS if shutil.which(t) is None]
    reason = None
    if os.geteuid() != 0:
        reason = "network namespaces need root"
    elif missing:
        reason = f"missing {', '.join(missing)} (apt-get install iproute2 nftables coturn)"
    if reason is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"the namespace test is required under CI: {reason}")
    pytest.skip(reason)


def _run(*argv: str, stdin: str | None = None) -> None:
    subprocess.run(argv, check=True, input=stdin, text=True, capture_output=True)


@dataclass
class Net:
    server: str
    client: str


@pytest.fixture
def net() -> Iterator[Net]:
    _require()
    tag = secrets.token_hex(3)
    n = Net(f"ink-s-{tag}", f"ink-c-{tag}")
    veth_s, veth_c = f"ivs{tag}", f"ivc{tag}"
    try:
        _run("ip", "netns", "add", n.server)
        _run("ip", "netns", "add", n.client)
        _run("ip", "link", "add", veth_s, "type", "veth", "peer", "name", veth_c)
        _run("ip", "link", "set", veth_s, "netns", n.server)
        _run("ip", "link", "set", veth_c, "netns", n.client)
        for ns, dev, ip in ((n.server, veth_s, SERVER_IP), (n.client, veth_c, CLIENT_IP)):
            _run("ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", dev)
            _run("ip", "-n", ns, "link", "set", dev, "up")
            _run("ip", "-n", ns, "link", "set", "lo", "up")
        rules = (
            "table inet inktest {\n  chain out {\n"
            "    type filter hook output priority 0; policy accept;\n"
            "    meta l4proto udp drop\n  }\n}\n"
        )
        _run("ip", "netns", "exec", n.client, "nft", "-f", "-", stdin=rules)
        yield n
    finally:
        for ns in (n.client, n.server):  # deleting a namespace deletes its veth end
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    try:
        yield started
    finally:
        for proc in started:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(8)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
            log = LOGS.pop(proc.pid, None)
            if log is not None:
                log.close()


def _in(
    ns: str, procs: list[subprocess.Popen[str]], *argv: str, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    """Starts ``argv`` in namespace ``ns``; the ``procs`` fixture stops it. Its stderr goes
    to a file: a pipe nobody reads would block a chatty process."""
    log = tempfile.TemporaryFile("w+")  # noqa: SIM115 - the procs fixture closes it
    proc = subprocess.Popen(
        ["ip", "netns", "exec", ns, *argv],
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        cwd=ROOT,
        env=env,
    )
    LOGS[proc.pid] = log
    procs.append(proc)
    return proc


def _line(proc: subprocess.Popen[str], prefix: str, deadline: float) -> str:
    assert proc.stdout is not None
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        line = proc.stdout.readline()
        if line.startswith(prefix):
            return line
        if not line and proc.poll() is not None:
            break
    err = proc.stderr.read() if proc.stderr and proc.poll() is not None else ""
    raise AssertionError(f"no {prefix!r} from {proc.args!r}: {err[-3000:]}")


def test_a_student_without_udp_joins_through_turn_over_tcp(
    net: Net, procs: list[subprocess.Popen[str]], tmp_path: Path
) -> None:
    turn_secret = secrets.token_hex(16)
    _in(
        net.server,
        procs,
        "turnserver",
        "-n",
        f"--listening-ip={SERVER_IP}",
        f"--relay-ip={SERVER_IP}",
        "--listening-port=3478",
        "--use-auth-secret",
        f"--static-auth-secret={turn_secret}",
        "--realm=inkroom.test",
        "--no-tls",
        "--no-dtls",
        "--no-cli",
        "--fingerprint",
        "--min-port=49160",
        "--max-port=49400",
        "--log-file=stdout",
        "--simple-log",
    )
    env = {
        **os.environ,
        "INKROOM_SECRET": SECRET,
        "INKROOM_LOG_LEVEL": "WARNING",
        "INKROOM_STUN_URLS": json.dumps([f"stun:{SERVER_IP}:3478"]),
        "INKROOM_TURN_URLS": json.dumps(
            [f"turn:{SERVER_IP}:3478?transport=udp", f"turn:{SERVER_IP}:3478?transport=tcp"]
        ),
        "INKROOM_TURN_SECRET": turn_secret,
    }
    inkroom = str(Path(sys.executable).with_name("inkroom"))
    _in(
        net.server,
        procs,
        inkroom,
        "serve",
        "--host",
        SERVER_IP,
        "--port",
        "8000",
        "--data-dir",
        str(tmp_path),
        env=env,
    )
    probe = f"import urllib.request as u; u.urlopen('http://{SERVER_IP}:8000/readyz', timeout=1)"
    deadline = time.monotonic() + 20
    while (
        subprocess.run(
            ["ip", "netns", "exec", net.client, sys.executable, "-c", probe], capture_output=True
        ).returncode
        != 0
    ):
        assert time.monotonic() < deadline, "inkroom serve did not come up"
        time.sleep(0.2)

    def url(role: Role, user: str) -> str:
        token = issue(SECRET, classroom="c1", role=role, user_id=user)
        return f"ws://{SERVER_IP}:8000/sfu/c1?token={token}"

    peer = [sys.executable, "-m", "tests.server.netns_peer"]
    tutor = _in(
        net.server,
        procs,
        *peer,
        "--url",
        url(Role.TUTOR, "tutor"),
        "--publish",
        "av",
        "--seconds",
        "20",
    )
    _line(tutor, "READY", 30)
    student = _in(
        net.client, procs, *peer, "--url", url(Role.STUDENT, "ann"), "--check", "--seconds", "6"
    )
    result = json.loads(_line(student, "RESULT", 90).split(" ", 1)[1])

    assert "srflx" not in result["candidate_types"], result
    assert "relay/udp" not in result["candidate_types"], result
    assert "relay/tcp" in result["candidate_types"], result
    assert result["local_candidate_types"] == ["host", "relay"], result
    assert result["diagnosis"] == [UDP_BLOCKED]
    assert result["received"].get("video:tutor", 0) > 60, result  # ~10 fps or better
    assert result["received"].get("audio:tutor", 0) > 100, result
    tutor.send_signal(signal.SIGUSR1)  # the student is done: no need to wait out its 20 s
    tutor_result = json.loads(_line(tutor, "RESULT", 60).split(" ", 1)[1])
    assert tutor_result["received"].get("audio:ann", 0) > 50, tutor_result
