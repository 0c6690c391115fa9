"""Real PostgreSQL for integration tests: a throwaway schema per test, dropped afterwards."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, create_engine, text

PG_URL = os.environ.get("INKROOM_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"PostgreSQL is required under CI but unavailable at {PG_URL}: {reason}")
    pytest.skip(f"PostgreSQL unavailable at {PG_URL}: {reason}")


@pytest.fixture
def pg_engine() -> Iterator[Engine]:
    schema = f"inkroom_test_{secrets.token_hex(4)}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except Exception as exc:
        admin.dispose()
        _unavailable(f"{type(exc).__name__}: {exc}")
    engine = create_engine(PG_URL, connect_args={"options": f"-csearch_path={schema}"}, pool_size=4)
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
