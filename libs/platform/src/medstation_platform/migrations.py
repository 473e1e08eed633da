"""Alembic, driven from code: each service keeps its migrations inside its package."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config


def alembic_config(migrations_dir: Path, database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir))
    # Alembic runs synchronously; psycopg 3 serves both sync and async URLs alike.
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade_to_head(migrations_dir: Path, database_url: str) -> None:
    command.upgrade(alembic_config(migrations_dir, database_url), "head")


def run_migrations_online(database_url: str) -> None:
    """Body of a service's migrations/env.py: migrate under an advisory lock.

    The lock makes concurrent starts (several replicas, or a Job racing a pod) safe:
    the second waits, then finds nothing left to do.
    """
    from alembic import context
    from sqlalchemy import create_engine, pool, text

    engine = create_engine(database_url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        connection.execute(text("SELECT pg_advisory_lock(727272)"))
        try:
            context.configure(connection=connection, target_metadata=None)
            with context.begin_transaction():
                context.run_migrations()
            connection.commit()
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(727272)"))
            connection.commit()
