"""Accounts, sessions, classrooms, invites and the page's tokens, over HTTP and WebSocket."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections.abc import Iterator
from http.cookies import SimpleCookie
from pathlib import Path

import httpx2 as httpx
import pytest
import redis
import websockets
from starlette.testclient import TestClient

from collab.protocol import PermissionDenied, SyncStep1, decode
from server.accounts import Directory
from server.app import create_app
from server.auth import Role, issue, verify
from server.db import make_engine, migrate
from server.settings import Settings

from .live import live_server

REDIS = "redis://127.0.0.1:6379/0"

SECRET = "accounts-test-secret-" + "0123456789abcdef" * 4
BASE = "http://testserver"
PASSWORD = "correct horse battery"


def settings(tmp: Path, **overrides: object) -> Settings:
    return Settings(data_dir=tmp, secret=SECRET, **overrides)  # type: ignore[arg-type]


def browser(app: object, origin: str = BASE) -> TestClient:
    """A client that behaves like a same-origin page: it sends Origin on every request."""
    return TestClient(app, base_url=origin, headers={"origin": origin})  # type: ignore[arg-type]


@pytest.fixture
def app_settings(tmp_path: Path) -> Settings:
    return settings(tmp_path)


@pytest.fixture
def tutor(app_settings: Settings) -> Iterator[TestClient]:
    with browser(create_app(app_settings)) as client:
        r = client.post(
            "/api/auth/signup",
            json={"email": "Ada@Example.org", "password": PASSWORD, "name": "Ada"},
        )
        assert r.status_code == 201, r.text
        yield client


def _classroom(client: TestClient, title: str = "Algebra 1") -> str:
    r = client.post("/api/classrooms", json={"title": title})
    assert r.status_code == 201, r.text
    cid: str = r.json()["id"]
    return cid


def _invite(client: TestClient, cid: str, **body: object) -> dict[str, object]:
    r = client.post(f"/api/classrooms/{cid}/invites", json=body)
    assert r.status_code == 201, r.text
    invite: dict[str, object] = r.json()
    return invite


def _cookie(response: httpx.Response, name: str) -> SimpleCookie:
    for header in response.headers.get_list("set-cookie"):
        jar: SimpleCookie = SimpleCookie()
        jar.load(header)
        if name in jar:
            return jar
    raise AssertionError(f"no {name} cookie in {response.headers}")


# -- cookies and sessions -------------------------------------------------------------


def test_first_run_is_reported_until_an_account_exists(app_settings: Settings) -> None:
    with browser(create_app(app_settings)) as client:
        assert client.get("/api/auth/me").json()["first_run"] is True
        client.post("/api/auth/signup", json={"email": "a@b.org", "password": PASSWORD})
        client.post("/api/auth/signout")
        assert client.get("/api/auth/me").json()["first_run"] is False


def test_session_cookie_is_httponly_samesite_lax_and_not_secure_over_http(
    app_settings: Settings,
) -> None:
    with browser(create_app(app_settings)) as client:
        r = client.post("/api/auth/signup", json={"email": "a@b.org", "password": PASSWORD})
        assert r.status_code == 201
        morsel = _cookie(r, "inkroom_session")["inkroom_session"]
        assert morsel["httponly"] is True
        assert morsel["samesite"].lower() == "lax"
        assert morsel["path"] == "/"
        assert not morsel["secure"]
        assert int(morsel["max-age"]) == app_settings.session_ttl
        assert len(morsel.value) >= 40
        assert client.get("/api/auth/me").json()["account"]["email"] == "a@b.org"


def test_session_cookie_is_secure_behind_an_https_public_url(tmp_path: Path) -> None:
    s = settings(tmp_path, public_url="https://class.example.org")
    with browser(create_app(s), origin="https://class.example.org") as client:
        r = client.post("/api/auth/signup", json={"email": "a@b.org", "password": PASSWORD})
        assert r.status_code == 201, r.text
        assert _cookie(r, "inkroom_session")["inkroom_session"]["secure"] is True


def test_signout_revokes_the_session_server_side(tutor: TestClient) -> None:
    stolen = tutor.cookies.get("inkroom_session")
    assert tutor.post("/api/auth/signout").status_code == 200
    assert tutor.get("/api/auth/me").json()["account"] is None
    # The old cookie value is dead on the server, not only forgotten by the browser.
    with browser(tutor.app) as other:
        other.cookies.set("inkroom_session", stolen or "")
        assert other.get("/api/auth/me").json()["account"] is None


def test_signin_rotates_the_session(tutor: TestClient) -> None:
    before = tutor.cookies.get("inkroom_session") or ""
    r = tutor.post("/api/auth/signin", json={"email": "ada@example.org", "password": PASSWORD})
    assert r.status_code == 200
    after = tutor.cookies.get("inkroom_session")
    assert after
    assert after != before
    with browser(tutor.app) as other:
        other.cookies.set("inkroom_session", before)
        assert other.get("/api/auth/me").json()["account"] is None


def test_signup_can_be_closed(tmp_path: Path) -> None:
    with browser(create_app(settings(tmp_path, signup_open=False))) as client:
        assert client.get("/api/auth/me").json()["signup_open"] is False
        r = client.post("/api/auth/signup", json={"email": "a@b.org", "password": PASSWORD})
        assert r.status_code == 403
        assert "closed" in r.json()["error"]


def test_weak_passwords_and_duplicate_emails_are_refused(tutor: TestClient) -> None:
    with browser(tutor.app) as other:
        short = other.post("/api/auth/signup", json={"email": "x@y.org", "password": "short"})
        assert short.status_code == 400
        assert "8 characters" in short.json()["error"]
        taken = other.post(
            "/api/auth/signup", json={"email": "ADA@example.org", "password": PASSWORD}
        )
        assert taken.status_code == 400
        assert "already exists" in taken.json()["error"]


def test_passwords_are_stored_as_argon2id(app_settings: Settings) -> None:
    engine = make_engine(app_settings.sql_url)
    migrate(engine)
    directory = Directory(engine)
    directory.create_account("a@b.org", PASSWORD, role="tutor")
    with engine.connect() as conn:
        stored = conn.exec_driver_sql("SELECT password_hash FROM account").scalar_one()
    assert stored.startswith("$argon2id$")
    assert PASSWORD not in stored
    assert directory.authenticate("A@B.org ", PASSWORD) is not None
    assert directory.authenticate("a@b.org", PASSWORD + "x") is None
    assert directory.authenticate("nobody@b.org", PASSWORD) is None
    engine.dispose()


# -- sign-in rate limit ---------------------------------------------------------------


def test_signin_is_rate_limited_per_email(tmp_path: Path) -> None:
    s = settings(tmp_path, signin_attempts=3, signin_window=60)
    with browser(create_app(s)) as client:
        client.post("/api/auth/signup", json={"email": "a@b.org", "password": PASSWORD})
        client.post("/api/auth/signout")
        for _ in range(3):
            wrong = client.post(
                "/api/auth/signin", json={"email": "a@b.org", "password": "nope-nope"}
            )
            assert wrong.status_code == 401
        # Even the right password is refused now: the limit is on attempts, not luck.
        limited = client.post("/api/auth/signin", json={"email": "a@b.org", "password": PASSWORD})
        assert limited.status_code == 429
        assert int(limited.headers["retry-after"]) > 0
        assert "Too many attempts" in limited.json()["error"]
        # Another account from the same address is not locked by it.
        client.post("/api/auth/signup", json={"email": "c@d.org", "password": PASSWORD})
        ok = client.post("/api/auth/signin", json={"email": "c@d.org", "password": PASSWORD})
        assert ok.status_code == 200


def test_signin_is_rate_limited_per_address(tmp_path: Path) -> None:
    s = settings(tmp_path, signin_attempts=2, signin_window=60)  # 12 per address
    with browser(create_app(s)) as client:
        codes = [
            client.post(
                "/api/auth/signin", json={"email": f"u{i}@b.org", "password": "nope-nope"}
            ).status_code
            for i in range(14)
        ]
        assert codes[:12] == [401] * 12
        assert codes[12:] == [429, 429]


# -- Origin check ---------------------------------------------------------------------


def test_cross_origin_posts_are_refused(tutor: TestClient) -> None:
    evil = {"origin": "https://evil.example"}
    r = tutor.post("/api/classrooms", json={"title": "x"}, headers=evil)
    assert r.status_code == 403
    assert r.json()["reason"] == "origin"
    assert tutor.get("/api/classrooms").json()["classrooms"] == []
    # Login CSRF too: sign-in and sign-up from another site are refused.
    with TestClient(tutor.app, base_url=BASE) as anonymous:
        for path in ("/api/auth/signin", "/api/auth/signup"):
            r = anonymous.post(path, json={"email": "e@f.org", "password": PASSWORD}, headers=evil)
            assert r.status_code == 403
        # "null" (sandboxed frames, file://) is not our origin either.
        r = anonymous.post("/api/auth/signin", json={}, headers={"origin": "null"})
        assert r.status_code == 403


def test_cookie_without_origin_is_refused_but_bearer_scripts_work(tutor: TestClient) -> None:
    cookie = tutor.cookies.get("inkroom_session") or ""
    with TestClient(tutor.app, base_url=BASE) as bare:
        bare.cookies.set("inkroom_session", cookie)
        assert bare.post("/api/classrooms", json={"title": "x"}).status_code == 403
        same = bare.post("/api/classrooms", json={"title": "x"}, headers={"referer": f"{BASE}/"})
        assert same.status_code == 201
    with TestClient(tutor.app, base_url=BASE) as script:
        signin = script.post(
            "/api/auth/signin",
            json={"email": "ada@example.org", "password": PASSWORD, "bearer": True},
        )
        assert signin.status_code == 200
        assert "set-cookie" not in signin.headers
        headers = {"authorization": f"Bearer {signin.json()['token']}"}
        made = script.post("/api/classrooms", json={"title": "From a script"}, headers=headers)
        assert made.status_code == 201
        titles = {
            c["title"] for c in script.get("/api/classrooms", headers=headers).json()["classrooms"]
        }
        assert titles == {"x", "From a script"}
        bad = script.get("/api/classrooms", headers={"authorization": "Bearer nonsense"})
        assert bad.status_code == 401


# -- classrooms and invites -----------------------------------------------------------


def test_tutor_creates_renames_and_lists_only_their_classrooms(tutor: TestClient) -> None:
    cid = _classroom(tutor, "  Algebra   1 ")
    assert tutor.get("/api/classrooms").json()["classrooms"][0]["title"] == "Algebra 1"
    r = tutor.patch(f"/api/classrooms/{cid}", json={"title": "Algebra I"})
    assert r.json()["title"] == "Algebra I"
    assert r.json()["url"] == f"{BASE}/c/{cid}"
    with browser(tutor.app) as other:
        other.post("/api/auth/signup", json={"email": "b@b.org", "password": PASSWORD})
        assert other.get("/api/classrooms").json()["classrooms"] == []
        assert other.patch(f"/api/classrooms/{cid}", json={"title": "mine"}).status_code == 403
        assert other.post(f"/api/classrooms/{cid}/invites", json={}).status_code == 403
        assert other.post(f"/api/classrooms/{cid}/token").json()["reason"] == "forbidden"
    assert tutor.post("/api/classrooms", json={"title": " "}).status_code == 400


def test_invite_urls_are_absolute_from_the_public_url(tmp_path: Path) -> None:
    s = settings(tmp_path, public_url="https://class.example.org/")
    with browser(create_app(s), origin="https://class.example.org") as client:
        client.post("/api/auth/signup", json={"email": "a@b.org", "password": PASSWORD})
        cid = _classroom(client)
        invite = _invite(client, cid)
        assert invite["url"] == f"https://class.example.org/j/{invite['code']}"


def test_invite_url_falls_back_to_the_request_base(tutor: TestClient) -> None:
    invite = _invite(tutor, _classroom(tutor), role="observer", expires_in=3600, max_uses=3)
    assert invite["url"] == f"{BASE}/j/{invite['code']}"
    assert (invite["role"], invite["max_uses"], invite["status"]) == ("observer", 3, "ok")


def test_students_join_with_a_stable_per_device_identity(tutor: TestClient) -> None:
    cid = _classroom(tutor)
    code = _invite(tutor, cid)["code"]
    with browser(tutor.app) as phone, browser(tutor.app) as laptop:
        assert phone.get(f"/api/join/{code}").json()["classroom"]["title"] == "Algebra 1"
        a = phone.post(f"/api/join/{code}", json={"name": "Sam"}).json()
        b = laptop.post(f"/api/join/{code}", json={"name": "Sam"}).json()
        assert a["user"] != b["user"], "two devices never share an identity"
        claims = verify(SECRET, a["token"])
        assert (claims.classroom, claims.role, claims.name) == (cid, Role.STUDENT, "Sam")
        # The phone reloads, renews, rejoins: always the same user id.
        again = phone.post(f"/api/join/{code}", json={"name": "Sam K"}).json()
        renewed = phone.post(f"/api/classrooms/{cid}/token").json()
        assert again["user"] == renewed["user"] == a["user"]
        assert renewed["name"] == "Sam K"
        grant = phone.cookies.get(f"inkroom_grant_{cid}")
        assert grant
        assert grant.count(".") == 2
    invites = tutor.get(f"/api/classrooms/{cid}/invites").json()["invites"]
    assert invites[0]["uses"] == 2, "a returning device is not another use"


def test_revoked_invite_refuses_new_joins_and_renewals(tutor: TestClient) -> None:
    cid = _classroom(tutor)
    code = _invite(tutor, cid)["code"]
    with browser(tutor.app) as student, browser(tutor.app) as late:
        assert student.post(f"/api/join/{code}", json={"name": "Sam"}).status_code == 200
        r = tutor.post(f"/api/invites/{code}/revoke")
        assert r.json()["status"] == "revoked"
        renewal = student.post(f"/api/classrooms/{cid}/token")
        assert renewal.status_code == 403
        assert renewal.json()["reason"] == "revoked"
        assert "Ask your tutor for a new link" in renewal.json()["error"]
        assert late.get(f"/api/join/{code}").json()["reason"] == "revoked"
        assert late.post(f"/api/join/{code}", json={"name": "Late"}).json()["reason"] == "revoked"
    assert tutor.get("/api/classrooms").json()["classrooms"][0]["invites"] == []


def test_use_limit_and_expiry(tutor: TestClient) -> None:
    cid = _classroom(tutor)
    once = _invite(tutor, cid, max_uses=1)["code"]
    with browser(tutor.app) as first, browser(tutor.app) as second:
        assert first.post(f"/api/join/{once}", json={"name": "A"}).status_code == 200
        assert second.post(f"/api/join/{once}", json={"name": "B"}).json()["reason"] == "used-up"
        # The device that joined may come back through it.
        assert first.post(f"/api/join/{once}", json={"name": "A"}).status_code == 200
    assert tutor.post(f"/api/classrooms/{cid}/invites", json={"expires_in": 0}).status_code == 400
    unknown = TestClient(tutor.app, base_url=BASE).get("/api/join/nope")
    assert unknown.json()["reason"] == "not-found"


def test_page_token_needs_a_session_or_a_grant(tutor: TestClient) -> None:
    cid = _classroom(tutor)
    mine = tutor.post(f"/api/classrooms/{cid}/token").json()
    claims = verify(SECRET, mine["token"])
    assert (claims.role, claims.name, claims.classroom) == (Role.TUTOR, "Ada", cid)
    assert mine["expires"] - claims.expires_at in (0, 1, -1)
    with browser(tutor.app) as stranger:
        r = stranger.post(f"/api/classrooms/{cid}/token")
        assert (r.status_code, r.json()["reason"]) == (401, "signin")


def test_cli_tokens_still_manage_their_classroom(tutor: TestClient) -> None:
    cli = issue(SECRET, classroom="c1", role=Role.TUTOR, user_id="t1")
    with TestClient(tutor.app, base_url=BASE) as script:
        headers = {"authorization": f"Bearer {cli}"}
        r = script.post("/api/classrooms/c1/invites", headers=headers, json={"role": "student"})
        assert r.status_code == 201
        assert r.json()["url"] == f"{BASE}/j/{r.json()['code']}"
        other = script.post("/api/classrooms/c2/invites", headers=headers, json={})
        assert other.status_code == 403
        student = issue(SECRET, classroom="c1", role=Role.STUDENT, user_id="s1")
        denied = script.post(
            "/api/classrooms/c1/invites", headers={"authorization": f"Bearer {student}"}, json={}
        )
        assert denied.status_code == 403
        assert script.post("/api/classrooms/c1/invites", json={}).status_code == 401
        admin = issue(SECRET, classroom="any", role=Role.ADMIN, user_id="root")
        every = script.get("/api/classrooms", headers={"authorization": f"Bearer {admin}"})
        assert {c["id"] for c in every.json()["classrooms"]} == {"c1"}


def test_owner_of_answers_which_account_owns_a_classroom(
    tutor: TestClient, app_settings: Settings
) -> None:
    cid = _classroom(tutor)
    engine = make_engine(app_settings.sql_url)
    owner = Directory(engine).owner_of(cid)
    assert owner is not None
    assert owner.email == "ada@example.org"
    assert Directory(engine).owner_of("no-such-room") is None
    engine.dispose()


# -- WebSockets -------------------------------------------------------------------------


def _http(ws_url: str) -> str:
    return ws_url.replace("ws://", "http://")


@contextlib.contextmanager
def _live_clients(base: str) -> Iterator[tuple[httpx.Client, httpx.Client]]:
    """A signed-up tutor and an anonymous student, both as same-origin pages."""
    with (
        httpx.Client(base_url=base, headers={"origin": base}) as tutor,
        httpx.Client(base_url=base, headers={"origin": base}) as student,
    ):
        r = tutor.post("/api/auth/signup", json={"email": "t@example.org", "password": PASSWORD})
        assert r.status_code == 201, r.text
        yield tutor, student


async def _close_of(ws: websockets.ClientConnection, wait: float = 5) -> tuple[int | None, str]:
    async with asyncio.timeout(wait):
        try:
            async for _ in ws:
                pass
        except websockets.ConnectionClosed:
            pass
    return ws.close_code, ws.close_reason or ""


@pytest.mark.anyio
async def test_archive_ends_open_connections_and_refuses_new_ones(tmp_path: Path) -> None:
    with live_server(settings(tmp_path)) as url, _live_clients(_http(url)) as (tutor, student):
        await _archive_scenario(url, tutor, student)


async def _archive_scenario(url: str, tutor: httpx.Client, student: httpx.Client) -> None:
    cid = tutor.post("/api/classrooms", json={"title": "Physics"}).json()["id"]
    code = tutor.post(f"/api/classrooms/{cid}/invites", json={}).json()["code"]
    token = student.post(f"/api/join/{code}", json={"name": "Sam"}).json()["token"]
    tutor_token = tutor.post(f"/api/classrooms/{cid}/token").json()["token"]
    async with (
        websockets.connect(f"{url}/ws/{cid}/board?token={token}") as board,
        websockets.connect(f"{url}/ws/{cid}/class?token={tutor_token}") as cls,
    ):
        assert isinstance(decode(await board.recv()), SyncStep1)  # type: ignore[arg-type]
        await cls.recv()
        r = await asyncio.to_thread(tutor.patch, f"/api/classrooms/{cid}", json={"archived": True})
        assert r.json()["archived"]
        assert await _close_of(board) == (4410, "archived")
        assert await _close_of(cls) == (4410, "archived")
    async with websockets.connect(f"{url}/ws/{cid}/board?token={token}") as again:
        first = await again.recv()
        assert isinstance(decode(first), PermissionDenied)  # type: ignore[arg-type]
        assert (await _close_of(again))[0] == 4410
    renewal = student.post(f"/api/classrooms/{cid}/token")
    assert renewal.json()["reason"] == "archived"
    assert tutor.post(f"/api/classrooms/{cid}/token").json()["reason"] == "archived"


@pytest.mark.anyio
async def test_a_connection_ends_when_its_token_expires(tmp_path: Path) -> None:
    with live_server(settings(tmp_path, page_token_ttl=2)) as url:
        with _live_clients(_http(url)) as (tutor, _):
            cid = tutor.post("/api/classrooms", json={"title": "Short"}).json()["id"]
            token = tutor.post(f"/api/classrooms/{cid}/token").json()["token"]
        async with websockets.connect(f"{url}/ws/{cid}/board?token={token}") as ws:
            assert await _close_of(ws, wait=6) == (4401, "token expired")


@pytest.mark.anyio
async def test_the_websocket_ignores_the_session_cookie(tmp_path: Path) -> None:
    """No WebSocket accepts the session cookie, so a cross-site page cannot ride on it:
    with the tutor's cookie and another Origin, and no token, it is refused."""
    with live_server(settings(tmp_path)) as url:
        with _live_clients(_http(url)) as (tutor, _):
            cid = tutor.post("/api/classrooms", json={"title": "Cookies"}).json()["id"]
            cookie = f"inkroom_session={tutor.cookies.get('inkroom_session')}"
        async with websockets.connect(
            f"{url}/ws/{cid}/board",
            additional_headers={"Cookie": cookie},
            origin="https://evil.example",  # type: ignore[arg-type]
        ) as ws:
            assert (await _close_of(ws))[0] == 4401


@pytest.mark.anyio
async def test_a_students_hand_is_lowered_when_they_leave(tmp_path: Path) -> None:
    from pycrdt import Map

    from .wspeer import WsPeer

    with live_server(settings(tmp_path)) as url:
        with _live_clients(_http(url)) as (tutor, student):
            cid = tutor.post("/api/classrooms", json={"title": "Hands"}).json()["id"]
            code = tutor.post(f"/api/classrooms/{cid}/invites", json={}).json()["code"]
            joined = student.post(f"/api/join/{code}", json={"name": "Sam"})
            student_token, student_id = joined.json()["token"], joined.json()["user"]
            tutor_token = tutor.post(f"/api/classrooms/{cid}/token").json()["token"]

        def raised() -> bool:
            return student_id in watcher.doc.get("hands", type=Map)

        async with WsPeer(f"{url}/ws/{cid}/class?token={tutor_token}") as watcher:
            async with WsPeer(f"{url}/ws/{cid}/class?token={student_token}") as peer:
                await peer.edit(lambda d: d.get("hands", type=Map).__setitem__(student_id, 1))
                await watcher.until(raised)
            await watcher.until(lambda: not raised())


@pytest.mark.anyio
async def test_archiving_through_one_node_ends_the_classrooms_connections_on_another(
    tmp_path: Path,
) -> None:
    """Two nodes on one database and one Redis bus: the tutor archives through node A; the
    student connected to node B is closed with 4410 too, and B refuses the next join."""
    redis_client = redis.Redis.from_url(REDIS)
    try:
        redis_client.ping()
    except redis.RedisError as exc:
        if os.environ.get("CI") == "true":
            raise AssertionError(f"Redis is needed at {REDIS}: {exc}") from exc
        pytest.skip(f"Redis unavailable at {REDIS}: {exc}")
    prefix = f"inktest-{secrets.token_hex(4)}"

    def node(name: str) -> Settings:
        return settings(tmp_path, redis_url=REDIS, redis_prefix=prefix, node_id=name)

    try:
        with (
            live_server(node("node-a")) as a,
            live_server(node("node-b")) as b,
            _live_clients(_http(a)) as (tutor, student),
        ):
            cid = tutor.post("/api/classrooms", json={"title": "Physics"}).json()["id"]
            code = tutor.post(f"/api/classrooms/{cid}/invites", json={}).json()["code"]
            token = student.post(f"/api/join/{code}", json={"name": "Sam"}).json()["token"]
            async with websockets.connect(f"{b}/ws/{cid}/board?token={token}") as board:
                assert isinstance(decode(await board.recv()), SyncStep1)  # type: ignore[arg-type]
                r = await asyncio.to_thread(
                    tutor.patch, f"/api/classrooms/{cid}", json={"archived": True}
                )
                assert r.json()["archived"]
                assert await _close_of(board) == (4410, "archived")
            async with websockets.connect(f"{b}/ws/{cid}/board?token={token}") as again:
                assert isinstance(decode(await again.recv()), PermissionDenied)  # type: ignore[arg-type]
                assert (await _close_of(again))[0] == 4410
    finally:
        keys = list(redis_client.scan_iter(match=f"{prefix}:*"))
        if keys:
            redis_client.delete(*keys)
        redis_client.close()
