"""``/check`` reports: sent with the classroom token, judged, bounded, rate-limited per
user, and listed for the classroom's tutor and for admins."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from server.app import create_app
from server.auth import Role, issue
from server.check_reports import MAX_REPORT_BYTES, POSTS_PER_HOUR, CheckReports, judge
from server.settings import Settings
from server.state import AppState

SECRET = "check-report-secret-" + "0123456789abcdef" * 4


def bearer(role: Role, user: str, classroom: str = "c1") -> dict[str, str]:
    token = issue(SECRET, classroom=classroom, role=role, user_id=user, name=user.title())
    return {"authorization": f"Bearer {token}"}


def report(**extra: Any) -> dict[str, Any]:
    return {
        "at": "2026-12-01T10:00:00Z",
        "classroom": "someone-elses",  # ignored: the token says which classroom
        "candidateTypes": ["host", "relay/tcp"],
        "network": ["UDP blocked: this network lets calls through only over TCP/TLS relays."],
        "media": {"ok": True, "rttMs": 80},
        "verdict": "low video",
        "advice": "Video will be reduced.",
        **extra,
    }


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(data_dir=tmp_path, secret=SECRET)
    headers = {
        "user-agent": "Mozilla/5.0 (Linux; Android 10) pytest",
        "origin": "http://testserver",
    }
    with TestClient(create_app(settings), headers=headers) as c:
        yield c


def test_a_report_is_stored_and_the_tutor_and_admins_see_it(client: TestClient) -> None:
    r = client.post("/api/check-reports", json=report(), headers=bearer(Role.STUDENT, "ann"))
    assert r.status_code == 201, r.text
    client.post("/api/check-reports", json=report(), headers=bearer(Role.STUDENT, "zed", "c2"))

    r = client.get("/api/classrooms/c1/check-reports", headers=bearer(Role.TUTOR, "tess"))
    assert r.status_code == 200, r.text
    [seen] = r.json()["reports"]
    assert seen["classroom"] == "c1"
    assert (seen["userId"], seen["role"], seen["verdict"]) == ("ann", "student", "low video")
    assert seen["candidateTypes"] == ["host", "relay/tcp"]
    assert seen["userAgent"].startswith("Mozilla/5.0 (Linux; Android 10)")
    assert seen["report"]["network"][0].startswith("UDP blocked")

    r = client.get("/api/admin/check-reports", headers=bearer(Role.ADMIN, "root"))
    assert r.status_code == 200, r.text
    assert [x["userId"] for x in r.json()["reports"]] == ["zed", "ann"]


def test_only_the_classrooms_staff_may_read_and_only_token_holders_may_send(
    client: TestClient,
) -> None:
    url = "/api/classrooms/c1/check-reports"
    assert client.get(url, headers=bearer(Role.STUDENT, "ann")).status_code == 403
    assert client.get(url, headers=bearer(Role.TUTOR, "tess", "c2")).status_code == 403
    assert client.get(url).status_code == 403
    assert (
        client.get("/api/admin/check-reports", headers=bearer(Role.TUTOR, "t")).status_code == 403
    )
    assert client.post("/api/check-reports", json=report()).status_code == 401
    forged = {"authorization": "Bearer a.b.c"}
    assert client.post("/api/check-reports", json=report(), headers=forged).status_code == 401


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json", "not JSON"),
        (b"[1]", "JSON object"),
        (json.dumps(report(verdict="great")).encode(), "'verdict'"),
        (json.dumps(report(candidateTypes=["x" * 40])).encode(), "'candidateTypes'"),
        (json.dumps(report(pad="x" * MAX_REPORT_BYTES)).encode(), "at most"),
    ],
)
def test_what_is_not_a_report_is_refused_and_not_stored(
    client: TestClient, body: bytes, reason: str
) -> None:
    r = client.post("/api/check-reports", content=body, headers=bearer(Role.STUDENT, "ann"))
    assert r.status_code == 400
    assert reason in r.json()["error"]
    state: AppState = client.app.state.inkroom  # type: ignore[attr-defined]
    assert state.check_reports.recent() == []


def test_reports_are_rate_limited_per_user(client: TestClient) -> None:
    ann = bearer(Role.STUDENT, "ann")
    for _ in range(POSTS_PER_HOUR):
        assert client.post("/api/check-reports", json=report(), headers=ann).status_code == 201
    refused = client.post("/api/check-reports", json=report(), headers=ann)
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) > 0
    bob = bearer(Role.STUDENT, "bob")
    assert client.post("/api/check-reports", json=report(), headers=bob).status_code == 201


def test_the_table_keeps_at_most_max_rows(client: TestClient) -> None:
    state: AppState = client.app.state.inkroom  # type: ignore[attr-defined]
    store = CheckReports(state.engine, max_rows=5)
    judged = judge(json.dumps(report()).encode())
    for i in range(12):
        store.add(
            judged, classroom="c1", user_id=f"u{i}", role="student", user_agent="", address=""
        )
    kept = store.recent(limit=100)
    assert [r["userId"] for r in kept] == [f"u{i}" for i in range(11, 6, -1)]
