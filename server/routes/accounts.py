"""``/api/auth/*``: sign-up, sign-in, sign-out and who am I."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..accounts import Account, AccountError
from ..errors import InvalidToken
from ..state import AppState
from ..web import (
    SESSION_COOKIE,
    clear_cookie,
    client_address,
    error,
    json_body,
    principal,
    run,
    set_cookie,
)


def _state(request: Request) -> AppState:
    state: AppState = request.app.state.inkroom
    return state


async def me(request: Request) -> Response:
    """``GET /api/auth/me``: the signed-in account (or null) and whether sign-up is open."""
    state = _state(request)
    try:
        who = await principal(request, state.directory, state.secret)
    except InvalidToken as exc:
        return error(401, str(exc), "signin")
    body: dict[str, object] = {"account": None, "signup_open": state.settings.signup_open}
    if who is None:
        # A server with no account yet greets its first tutor with the sign-up form.
        body["first_run"] = not await run(state.directory.has_accounts)
    if who is not None and who.account is not None:
        body["account"] = who.account.public()
    elif who is not None and who.claims is not None:
        c = who.claims
        body["token"] = {"user": c.user_id, "classroom": c.classroom, "role": c.role.value}
    return JSONResponse(body, headers={"Cache-Control": "no-store"})


async def signup(request: Request) -> Response:
    """``POST /api/auth/signup`` ``{"email", "password", "name"}``: a tutor account."""
    state = _state(request)
    if not state.settings.signup_open:
        return error(403, "Sign-up is closed here: ask the operator for an account.", "closed")
    limited = _limited(state, request, None)
    if limited is not None:
        return limited
    body = await json_body(request)
    if body is None:
        return error(400, "body must be a JSON object", "invalid")
    state.signin_by_address.hit(client_address(request))
    try:
        account = await run(
            state.directory.create_account,
            str(body.get("email") or ""),
            str(body.get("password") or ""),
            role="tutor",
            name=str(body.get("name") or ""),
        )
    except AccountError as exc:
        return error(400, str(exc).capitalize() + ".", "invalid")
    return await _signed_in(state, account, status=201, as_bearer=body.get("bearer") is True)


async def signin(request: Request) -> Response:
    """``POST /api/auth/signin`` ``{"email", "password"[, "bearer": true]}``.

    Sets the session cookie; with ``"bearer": true`` returns the session token instead,
    for scripts (``Authorization: Bearer``). Rate limited per email and per address.
    """
    state = _state(request)
    body = await json_body(request)
    if body is None:
        return error(400, "body must be a JSON object", "invalid")
    email = str(body.get("email") or "").strip().lower()
    limited = _limited(state, request, email)
    if limited is not None:
        return limited
    address = client_address(request)
    state.signin_by_address.hit(address)
    account = await run(state.directory.authenticate, email, str(body.get("password") or ""))
    if account is None:
        state.signin_by_email.hit(email)
        return error(401, "Wrong email or password.", "credentials")
    state.signin_by_email.clear(email)
    previous = request.cookies.get(SESSION_COOKIE)
    if previous:  # a new session each sign-in; the one this browser held ends
        await run(state.directory.close_session, previous)
    return await _signed_in(state, account, status=200, as_bearer=body.get("bearer") is True)


def _limited(state: AppState, request: Request, email: str | None) -> Response | None:
    waits = [state.signin_by_address.retry_after(client_address(request))]
    if email:
        waits.append(state.signin_by_email.retry_after(email))
    wait = max((w for w in waits if w is not None), default=None)
    if wait is None:
        return None
    return _too_many(wait)


def _too_many(wait: int) -> Response:
    minutes = max(1, round(wait / 60))
    response = error(
        429,
        f"Too many attempts. Try again in {minutes} minute{'s' if minutes != 1 else ''}.",
        "rate-limited",
        retry_after=wait,
    )
    response.headers["Retry-After"] = str(wait)
    return response


async def _signed_in(
    state: AppState, account: Account, *, status: int, as_bearer: bool
) -> Response:
    token = await run(state.directory.open_session, account)
    body: dict[str, object] = {"account": account.public()}
    if as_bearer:
        body["token"] = token
        return JSONResponse(body, status_code=status, headers={"Cache-Control": "no-store"})
    response = JSONResponse(body, status_code=status, headers={"Cache-Control": "no-store"})
    set_cookie(response, state.settings, SESSION_COOKIE, token, state.settings.session_ttl)
    return response


async def signout(request: Request) -> Response:
    """``POST /api/auth/signout``: ends this session (cookie or bearer)."""
    state = _state(request)
    try:
        who = await principal(request, state.directory, state.secret)
    except InvalidToken:
        who = None
    if who is not None and who.session is not None:
        await run(state.directory.close_session, who.session)
    response = JSONResponse({"account": None})
    clear_cookie(response, state.settings, SESSION_COOKIE)
    return response
