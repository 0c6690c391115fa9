"""TURN with Debian's coturn, started here on loopback with a generated shared secret.

The server hands out REST-style credentials (docs/sfu.md); coturn checks them against
the same secret. A student restricted to relayed candidates joins the call, decodes the
tutor's video and is heard by the tutor, over TURN/UDP and over TURN/TCP.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from server.auth import Role, issue
from sfu.synthetic import MovingPicture, Tone
from tests.sfu.peers import until

from .callpeer import call_peer
from .live import free_port, live_server, settings_for

pytestmark = pytest.mark.anyio
SECRET = "turn-test-" + "0123456789abcdef" * 4
TURNSERVER = shutil.which("turnserver") or "/usr/bin/turnserver"


@pytest.fixture(scope="module")
def coturn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, str]]:
    """(port, shared secret) of a coturn listening on 127.0.0.1 (UDP and TCP)."""
    if not os.path.exists(TURNSERVER):
        if os.environ.get("CI") == "true":
            pytest.fail("coturn is required under CI (apt-get install coturn; scripts/turn)")
        pytest.skip("coturn not installed (apt-get install coturn)")
    tmp = tmp_path_factory.mktemp("coturn")
    port, shared = free_port(), secrets.token_hex(16)
    relay_base = 40000 + secrets.randbelow(20000)
    log = (tmp / "turn.log").open("w")
    proc = subprocess.Popen(
        [
            TURNSERVER,
            "-n",
            "--listening-ip=127.0.0.1",
            "--relay-ip=127.0.0.1",
            f"--listening-port={port}",
            "--use-auth-secret",
            f"--static-auth-secret={shared}",
            "--realm=inkroom.test",
            "--no-tls",
            "--no-dtls",
            "--no-cli",
            "--fingerprint",
            "--allow-loopback-peers",
            f"--min-port={relay_base}",
            f"--max-port={relay_base + 200}",
            f"--pidfile={tmp / 'turn.pid'}",
            "--log-file=stdout",
            "--simple-log",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 10
        while True:  # TCP listener up means the UDP one is too (same start-up step)
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"coturn did not start: {(tmp / 'turn.log').read_text()}")
                time.sleep(0.05)
        yield port, shared
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def call_url(server: str, role: Role, user: str) -> str:
    return f"{server}/sfu/c1?token={issue(SECRET, classroom='c1', role=role, user_id=user)}"


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_a_relay_only_student_joins_through_turn(
    coturn: tuple[int, str], tmp_path: Path, transport: str
) -> None:
    port, shared = coturn
    settings = settings_for(
        tmp_path,
        SECRET,
        turn_urls=[f"turn:127.0.0.1:{port}?transport={transport}"],
        turn_secret=shared,
        turn_ttl=300,
    )
    with live_server(settings) as server:
        async with (
            call_peer(call_url(server, Role.TUTOR, "tutor")) as tutor,
            call_peer(call_url(server, Role.STUDENT, "ann"), own_ice=True, relay_only=True) as ann,
        ):
            await tutor.publish(Tone(), MovingPicture(160, 120, 30))
            await ann.publish(Tone(amplitude=0.5))
            tutor_id = tutor.joined["participant"] if tutor.joined else ""
            ann_id = ann.joined["participant"] if ann.joined else ""
            await until(lambda: any(r.frames > 15 for r in ann.slots_of(tutor_id, "video")), 15)
            await until(lambda: any(r.frames > 25 for r in tutor.slots_of(ann_id, "audio")), 10)
            assert ann.candidate_types() == {"relay"}
