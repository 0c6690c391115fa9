"""Accounts, sessions, classrooms, invite links and the students who joined through them.

Identity belongs to the server: the collaboration peers only ever see a signed access
token. Everything here is synchronous SQLAlchemy Core on the app's engine; the HTTP
routes call it through ``asyncio.to_thread``.

* An **account** (tutor or admin) signs in with email and password (argon2id hashes).
* A **session** is a random token in an HttpOnly cookie (or an ``Authorization: Bearer``
  header); only its SHA-256 is stored, so a database leak does not leak sessions.
* A **classroom** row (id, title, owner, created, archived) exists for classrooms made on
  the tutor's home; classrooms named only in CLI tokens have no row and no owner.
* An **invite** ``/j/{code}`` lets people join a classroom as student or observer; it can
  expire, be limited to a number of uses, and be revoked.
* A **member** is one device that joined through an invite: its id is the user id in the
  room, stable across reloads, and it holds access for as long as the invite is not
  revoked, the member not removed and the classroom not archived.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import string
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import Engine

metadata = sa.MetaData()

account_table = sa.Table(
    "account",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("email", sa.String(254), nullable=False, unique=True),
    sa.Column("name", sa.String(80), nullable=False, server_default=""),
    sa.Column("password_hash", sa.String(255), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

session_table = sa.Table(
    "account_session",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),  # sha256 hex of the session token
    sa.Column(
        "account_id",
        sa.Integer,
        sa.ForeignKey("account.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
)

classroom_table = sa.Table(
    "classroom",
    metadata,
    sa.Column("id", sa.String(128), primary_key=True),
    sa.Column("title", sa.String(200), nullable=False),
    sa.Column("owner_id", sa.Integer, sa.ForeignKey("account.id"), nullable=True, index=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("archived_at", sa.DateTime(timezone=True), nullable=True),
)

invite_table = sa.Table(
    "classroom_invite",
    metadata,
    sa.Column("code", sa.String(64), primary_key=True),
    sa.Column(
        "classroom_id", sa.String(128), sa.ForeignKey("classroom.id"), nullable=False, index=True
    ),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("created_by", sa.Integer, nullable=True),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("max_uses", sa.Integer, nullable=True),
    sa.Column("uses", sa.Integer, nullable=False, server_default="0"),
    sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
)

member_table = sa.Table(
    "classroom_member",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column(
        "classroom_id", sa.String(128), sa.ForeignKey("classroom.id"), nullable=False, index=True
    ),
    sa.Column("invite_code", sa.String(64), nullable=False, index=True),
    sa.Column("name", sa.String(80), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("removed_at", sa.DateTime(timezone=True), nullable=True),
)

ACCOUNT_ROLES = ("tutor", "admin")
INVITE_ROLES = ("student", "observer")
MIN_PASSWORD = 8
MAX_PASSWORD = 1024
MAX_TITLE = 200
MAX_NAME = 80
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")
_ID_ALPHABET = string.ascii_lowercase + string.digits
_CLASSROOM_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")

# argon2id with the library's defaults (RFC 9106 low-memory profile): ~50 ms per hash here.
_hasher = PasswordHasher()
# Verified against when the email is unknown, so a miss costs as long as a hit.
_DUMMY_HASH = _hasher.hash("not a password of anyone" + secrets.token_hex(8))


class AccountError(ValueError):
    """A request the directory refuses: the message is safe to show to the user."""


def now() -> datetime:
    return datetime.now(UTC)


def _utc(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes: they were written in UTC."""
    if value is None:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _iso(value: datetime | None) -> str | None:
    value = _utc(value)
    return value.isoformat(timespec="seconds") if value else None


def normalise_email(email: str) -> str:
    value = email.strip().lower()
    if len(value) > 254 or not _EMAIL.match(value):
        raise AccountError("enter a valid email address")
    return value


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"the password needs at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise AccountError("the password is too long")


def hash_password(password: str) -> str:
    check_password(password)
    return _hasher.hash(password)


def _session_key(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def valid_classroom_id(value: str) -> bool:
    return bool(_CLASSROOM_ID.match(value))


def new_classroom_id() -> str:
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(10))


@dataclass(frozen=True, slots=True)
class Account:
    id: int
    email: str
    name: str
    role: str
    created_at: datetime

    @property
    def user_id(self) -> str:
        """The account's user id in rooms."""
        return f"acct-{self.id}"

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "email": self.email, "name": self.name, "role": self.role}


@dataclass(frozen=True, slots=True)
class Classroom:
    id: str
    title: str
    owner_id: int | None
    created_at: datetime
    archived_at: datetime | None

    @property
    def archived(self) -> bool:
        return self.archived_at is not None

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "owner": self.owner_id,
            "created": _iso(self.created_at),
            "archived": _iso(self.archived_at),
        }


@dataclass(frozen=True, slots=True)
class Invite:
    code: str
    classroom_id: str
    role: str
    created_at: datetime
    expires_at: datetime | None
    max_uses: int | None
    uses: int
    revoked_at: datetime | None

    def status(self, at: datetime | None = None) -> str:
        """``ok``, ``revoked``, ``expired`` or ``used-up`` (for new joins)."""
        if self.revoked_at is not None:
            return "revoked"
        expires = _utc(self.expires_at)
        if expires is not None and expires <= (at or now()):
            return "expired"
        if self.max_uses is not None and self.uses >= self.max_uses:
            return "used-up"
        return "ok"

    def public(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "classroom": self.classroom_id,
            "role": self.role,
            "created": _iso(self.created_at),
            "expires": _iso(self.expires_at),
            "max_uses": self.max_uses,
            "uses": self.uses,
            "revoked": _iso(self.revoked_at),
            "status": self.status(),
        }


@dataclass(frozen=True, slots=True)
class Member:
    id: str
    classroom_id: str
    invite_code: str
    name: str
    role: str
    removed_at: datetime | None


def _account(row: Any) -> Account:
    return Account(row.id, row.email, row.name, row.role, _utc(row.created_at) or now())


def _classroom(row: Any) -> Classroom:
    return Classroom(
        row.id, row.title, row.owner_id, _utc(row.created_at) or now(), _utc(row.archived_at)
    )


def _invite(row: Any) -> Invite:
    return Invite(
        row.code,
        row.classroom_id,
        row.role,
        _utc(row.created_at) or now(),
        _utc(row.expires_at),
        row.max_uses,
        row.uses,
        _utc(row.revoked_at),
    )


def _member(row: Any) -> Member:
    return Member(
        row.id, row.classroom_id, row.invite_code, row.name, row.role, _utc(row.removed_at)
    )


class Directory:
    """Accounts, sessions, classrooms, invites and members on one SQL engine."""

    def __init__(self, engine: Engine, *, session_ttl: int = 30 * 24 * 3600) -> None:
        self.engine = engine
        self.session_ttl = session_ttl

    # -- accounts --------------------------------------------------------------------

    def create_account(self, email: str, password: str, *, role: str, name: str = "") -> Account:
        """Raises :class:`AccountError` for a bad email, a weak password or a taken email."""
        if role not in ACCOUNT_ROLES:
            raise AccountError(f"role must be one of {', '.join(ACCOUNT_ROLES)}")
        email = normalise_email(email)
        digest = hash_password(password)
        name = name.strip()[:MAX_NAME] or email.split("@")[0]
        created = now()
        try:
            with self.engine.begin() as conn:
                result = conn.execute(
                    account_table.insert().values(
                        email=email, name=name, password_hash=digest, role=role, created_at=created
                    )
                )
                key = result.inserted_primary_key
        except sa.exc.IntegrityError:
            raise AccountError("an account with this email already exists")
        assert key is not None
        return Account(int(key[0]), email, name, role, created)

    def account(self, account_id: int) -> Account | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                account_table.select().where(account_table.c.id == account_id)
            ).first()
        return _account(row) if row else None

    def account_by_email(self, email: str) -> Account | None:
        try:
            email = normalise_email(email)
        except AccountError:
            return None
        with self.engine.connect() as conn:
            row = conn.execute(account_table.select().where(account_table.c.email == email)).first()
        return _account(row) if row else None

    def has_accounts(self) -> bool:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(account_table.c.id).limit(1)).first() is not None

    def accounts(self) -> list[Account]:
        with self.engine.connect() as conn:
            rows = conn.execute(account_table.select().order_by(account_table.c.id)).all()
        return [_account(r) for r in rows]

    def authenticate(self, email: str, password: str) -> Account | None:
        """The account if the password matches; ``None`` otherwise, in about the same time."""
        try:
            key = normalise_email(email)
        except AccountError:
            key = None
        row = None
        if key is not None:
            with self.engine.connect() as conn:
                row = conn.execute(
                    account_table.select().where(account_table.c.email == key)
                ).first()
        digest = row.password_hash if row else _DUMMY_HASH
        try:
            _hasher.verify(digest, password[:MAX_PASSWORD])
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return None
        if row is None:
            return None
        if _hasher.check_needs_rehash(digest):
            with self.engine.begin() as conn:
                conn.execute(
                    account_table.update()
                    .where(account_table.c.id == row.id)
                    .values(password_hash=_hasher.hash(password))
                )
        return _account(row)

    def set_password(self, email: str, password: str) -> Account:
        """Sets a new password and signs the account out everywhere."""
        account = self.account_by_email(email)
        if account is None:
            raise AccountError(f"no account with email {email}")
        digest = hash_password(password)
        with self.engine.begin() as conn:
            conn.execute(
                account_table.update()
                .where(account_table.c.id == account.id)
                .values(password_hash=digest)
            )
            conn.execute(session_table.delete().where(session_table.c.account_id == account.id))
        return account

    def set_role(self, email: str, role: str) -> Account:
        if role not in ACCOUNT_ROLES:
            raise AccountError(f"role must be one of {', '.join(ACCOUNT_ROLES)}")
        account = self.account_by_email(email)
        if account is None:
            raise AccountError(f"no account with email {email}")
        with self.engine.begin() as conn:
            conn.execute(
                account_table.update().where(account_table.c.id == account.id).values(role=role)
            )
        return Account(account.id, account.email, account.name, role, account.created_at)

    # -- sessions --------------------------------------------------------------------

    def open_session(self, account: Account) -> str:
        """A new session token (shown once; only its hash is stored)."""
        token = secrets.token_urlsafe(32)
        created = now()
        with self.engine.begin() as conn:
            conn.execute(
                session_table.insert().values(
                    id=_session_key(token),
                    account_id=account.id,
                    created_at=created,
                    expires_at=created + timedelta(seconds=self.session_ttl),
                )
            )
            # Expired sessions of this account are swept as new ones open.
            conn.execute(
                session_table.delete().where(
                    session_table.c.account_id == account.id,
                    session_table.c.expires_at < created,
                )
            )
        return token

    def session_account(self, token: str) -> Account | None:
        """The account behind a live session token, or ``None``."""
        if not token or len(token) > 256:
            return None
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(account_table, session_table.c.expires_at.label("session_expires"))
                .join(session_table, session_table.c.account_id == account_table.c.id)
                .where(session_table.c.id == _session_key(token))
            ).first()
        if row is None:
            return None
        expires = _utc(row.session_expires)
        if expires is None or expires <= now():
            return None
        return _account(row)

    def close_session(self, token: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(session_table.delete().where(session_table.c.id == _session_key(token)))

    def close_sessions(self, account_id: int) -> None:
        with self.engine.begin() as conn:
            conn.execute(session_table.delete().where(session_table.c.account_id == account_id))

    # -- classrooms ------------------------------------------------------------------

    def create_classroom(
        self, title: str, owner: Account | None, *, classroom_id: str | None = None
    ) -> Classroom:
        title = " ".join(title.split())[:MAX_TITLE]
        if not title:
            raise AccountError("the classroom needs a title")
        created = now()
        for _ in range(5):
            cid = classroom_id or new_classroom_id()
            try:
                with self.engine.begin() as conn:
                    conn.execute(
                        classroom_table.insert().values(
                            id=cid,
                            title=title,
                            owner_id=owner.id if owner else None,
                            created_at=created,
                        )
                    )
                return Classroom(cid, title, owner.id if owner else None, created, None)
            except sa.exc.IntegrityError:
                if classroom_id is not None:
                    raise AccountError(f"classroom {classroom_id} already exists")
        raise AccountError("could not allocate a classroom id")

    def classroom(self, classroom_id: str) -> Classroom | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                classroom_table.select().where(classroom_table.c.id == classroom_id)
            ).first()
        return _classroom(row) if row else None

    def classrooms(self, owner: Account | None = None) -> list[Classroom]:
        """An account's classrooms, newest first; every classroom when ``owner`` is None."""
        query = classroom_table.select().order_by(classroom_table.c.created_at.desc())
        if owner is not None:
            query = query.where(classroom_table.c.owner_id == owner.id)
        with self.engine.connect() as conn:
            return [_classroom(r) for r in conn.execute(query).all()]

    def rename_classroom(self, classroom_id: str, title: str) -> Classroom:
        title = " ".join(title.split())[:MAX_TITLE]
        if not title:
            raise AccountError("the classroom needs a title")
        with self.engine.begin() as conn:
            conn.execute(
                classroom_table.update()
                .where(classroom_table.c.id == classroom_id)
                .values(title=title)
            )
        found = self.classroom(classroom_id)
        if found is None:
            raise AccountError("no such classroom")
        return found

    def set_archived(self, classroom_id: str, archived: bool) -> Classroom:
        with self.engine.begin() as conn:
            conn.execute(
                classroom_table.update()
                .where(classroom_table.c.id == classroom_id)
                .values(archived_at=now() if archived else None)
            )
        found = self.classroom(classroom_id)
        if found is None:
            raise AccountError("no such classroom")
        return found

    def owner_of(self, classroom_id: str) -> Account | None:
        """The account that owns classroom ``classroom_id`` (``None``: no row, or no owner).

        Billing asks this: whose plan pays for a classroom.
        """
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(account_table)
                .join(classroom_table, classroom_table.c.owner_id == account_table.c.id)
                .where(classroom_table.c.id == classroom_id)
            ).first()
        return _account(row) if row else None

    # -- invites ---------------------------------------------------------------------

    def create_invite(
        self,
        classroom_id: str,
        *,
        role: str = "student",
        created_by: Account | None = None,
        expires_at: datetime | None = None,
        max_uses: int | None = None,
    ) -> Invite:
        if role not in INVITE_ROLES:
            raise AccountError("role must be student or observer")
        if max_uses is not None and max_uses < 1:
            raise AccountError("the use limit must be at least 1")
        created = now()
        code = secrets.token_urlsafe(12)
        with self.engine.begin() as conn:
            conn.execute(
                invite_table.insert().values(
                    code=code,
                    classroom_id=classroom_id,
                    role=role,
                    created_at=created,
                    created_by=created_by.id if created_by else None,
                    expires_at=expires_at,
                    max_uses=max_uses,
                    uses=0,
                )
            )
        return Invite(code, classroom_id, role, created, expires_at, max_uses, 0, None)

    def invite(self, code: str) -> Invite | None:
        if not code or len(code) > 64:
            return None
        with self.engine.connect() as conn:
            row = conn.execute(invite_table.select().where(invite_table.c.code == code)).first()
        return _invite(row) if row else None

    def invites(self, classroom_id: str) -> list[Invite]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                invite_table.select()
                .where(invite_table.c.classroom_id == classroom_id)
                .order_by(invite_table.c.created_at.desc())
            ).all()
        return [_invite(r) for r in rows]

    def revoke_invite(self, code: str) -> Invite | None:
        with self.engine.begin() as conn:
            conn.execute(
                invite_table.update()
                .where(invite_table.c.code == code, invite_table.c.revoked_at.is_(None))
                .values(revoked_at=now())
            )
        return self.invite(code)

    # -- members ---------------------------------------------------------------------

    def join(self, code: str, name: str, member_id: str | None = None) -> tuple[Invite, Member]:
        """Joins through an invite, as a new member or as the device's existing one.

        ``member_id`` (from the device's grant) keeps a returning device's identity and
        does not count as another use. Raises :class:`AccountError` with the refusal
        (``revoked``, ``expired``, ``used-up``, ``not-found``) as its message.
        """
        name = " ".join(name.split())[:MAX_NAME]
        if not name:
            raise AccountError("name")
        with self.engine.begin() as conn:
            row = conn.execute(invite_table.select().where(invite_table.c.code == code)).first()
            if row is None:
                raise AccountError("not-found")
            invite = _invite(row)
            if invite.revoked_at is not None:
                raise AccountError("revoked")
            existing = None
            if member_id:
                existing = conn.execute(
                    member_table.select().where(
                        member_table.c.id == member_id,
                        member_table.c.classroom_id == invite.classroom_id,
                    )
                ).first()
            if existing is not None and existing.removed_at is None:
                conn.execute(
                    member_table.update()
                    .where(member_table.c.id == existing.id)
                    .values(name=name, invite_code=code, role=invite.role)
                )
                return invite, Member(
                    existing.id, invite.classroom_id, code, name, invite.role, None
                )
            status = invite.status()
            if status != "ok":
                raise AccountError(status)
            # Counted in the same transaction as the check: two devices racing for the last
            # use cannot both get in.
            counted = conn.execute(
                invite_table.update()
                .where(
                    invite_table.c.code == code,
                    sa.or_(
                        invite_table.c.max_uses.is_(None),
                        invite_table.c.uses < invite_table.c.max_uses,
                    ),
                )
                .values(uses=invite_table.c.uses + 1)
            )
            if counted.rowcount != 1:
                raise AccountError("used-up")
            prefix = "s" if invite.role == "student" else "o"
            member = Member(
                f"{prefix}-{secrets.token_hex(6)}",
                invite.classroom_id,
                code,
                name,
                invite.role,
                None,
            )
            conn.execute(
                member_table.insert().values(
                    id=member.id,
                    classroom_id=member.classroom_id,
                    invite_code=code,
                    name=name,
                    role=member.role,
                    created_at=now(),
                )
            )
        return invite, member

    def member(self, member_id: str) -> Member | None:
        with self.engine.connect() as conn:
            row = conn.execute(member_table.select().where(member_table.c.id == member_id)).first()
        return _member(row) if row else None

    def remove_member(self, member_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                member_table.update().where(member_table.c.id == member_id).values(removed_at=now())
            )
