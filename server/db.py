"""Database engine and Alembic migrations, applied at startup."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, text

from collab.adapters.sql_store import configure_sqlite

MIGRATIONS = Path(__file__).parent / "migrations"
# PostgreSQL advisory lock key held while migrating: nodes starting together take turns.
MIGRATION_LOCK = 0x1A7C_0011


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False})
        configure_sqlite(engine)
        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)


def migrate(engine: Engine) -> None:
    """Brings the schema to the newest revision (idempotent).

    On PostgreSQL the whole upgrade runs under a transaction-scoped advisory lock, so
    nodes starting at once migrate one after the other (the later ones find nothing to
    do) instead of racing to create the same tables.
    """
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
