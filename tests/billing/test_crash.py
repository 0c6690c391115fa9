"""A node killed between the intent row and the Stripe call: on restart the outbox makes
exactly one call (and one killed after the call but before recording it makes no second)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from .fake_stripe_http import fake_stripe_server

ROOT = Path(__file__).resolve().parents[2]


def _node(db: str, base: str, mode: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.billing.crash_worker", db, base, mode, "sub_crash"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize(
    ("mode", "marker"), [("crash-before", "ABOUT-TO-CALL"), ("crash-after", "CALLED")]
)
def test_killed_node_restarts_and_the_outbox_calls_once(
    tmp_path: Path, mode: str, marker: str
) -> None:
    db = f"sqlite:///{tmp_path / 'inkroom.db'}"
    with fake_stripe_server() as (base, fake):
        node = _node(db, base, mode)
        try:
            assert node.stdout is not None
            line = node.stdout.readline()
            assert line.startswith(marker), line
            os.kill(node.pid, signal.SIGKILL)  # no cleanup, no finally: a crash
        finally:
            if node.poll() is None:
                os.kill(node.pid, signal.SIGKILL)
            node.communicate(timeout=10)
        calls_before_restart = len(fake.cancels())
        assert calls_before_restart == (0 if mode == "crash-before" else 1)

        restarted = _node(db, base, "drain")
        out, err = restarted.communicate(timeout=60)
        assert restarted.returncode == 0, err
        assert out.strip().startswith("DONE")
        cancels = fake.cancels()
        assert len(cancels) == 1, fake.calls
        assert cancels[0][2], "the call carries the intent id as Idempotency-Key"
        assert fake.status == "canceled"
        if mode == "crash-before":
            # The key was written with the intent before the crash: it is the intent's id.
            assert cancels[0][2] in line
