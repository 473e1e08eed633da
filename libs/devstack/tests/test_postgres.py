from __future__ import annotations

import secrets
from collections.abc import Iterator

import psycopg
import pytest
import sqlalchemy
from psycopg import conninfo
from sqlalchemy.engine import make_url

from devstack.postgres import analyze_databases, database_url, drop_database, ensure_database
from devstack.pytest_plugin import MakeDatabase


def _libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


@pytest.fixture
def names(postgres_admin_url: str) -> Iterator[list[str]]:
    """Database (= role) names a test provisions itself; dropped afterwards."""
    created: list[str] = []
    yield created
    for name in created:
        drop_database(postgres_admin_url, name, name)


def _new_name(names: list[str]) -> str:
    name = f"devstack_test_{secrets.token_hex(4)}"
    names.append(name)
    return name


def test_ensure_database_is_idempotent_and_keeps_data(
    postgres_admin_url: str, names: list[str]
) -> None:
    name = _new_name(names)
    ensure_database(postgres_admin_url, name, name, "first-password")
    url = _libpq(database_url(postgres_admin_url, name, name, "first-password"))
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE kept (id int)")
        conn.execute("INSERT INTO kept VALUES (1)")

    ensure_database(postgres_admin_url, name, name, "second-password")

    url = _libpq(database_url(postgres_admin_url, name, name, "second-password"))
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT id FROM kept").fetchall() == [(1,)]
        owner = conn.execute(
            "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()"
        ).fetchone()
    assert owner == (name,)


def test_role_cannot_connect_to_another_roles_database(
    postgres_admin_url: str, names: list[str]
) -> None:
    mine, theirs = _new_name(names), _new_name(names)
    ensure_database(postgres_admin_url, mine, mine, "mine-password")
    ensure_database(postgres_admin_url, theirs, theirs, "theirs-password")
    intruder = _libpq(database_url(postgres_admin_url, theirs, mine, "mine-password"))

    with pytest.raises(psycopg.OperationalError, match=r"permission denied|CONNECT privilege"):
        psycopg.connect(intruder).close()


def test_drop_database_removes_database_and_role(postgres_admin_url: str) -> None:
    name = f"devstack_test_{secrets.token_hex(4)}"
    ensure_database(postgres_admin_url, name, name, "password-to-drop")

    drop_database(postgres_admin_url, name, name)
    drop_database(postgres_admin_url, name, name)  # absent is fine

    with psycopg.connect(postgres_admin_url) as conn:
        databases = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        assert databases.fetchone() is None
        roles = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,))
        assert roles.fetchone() is None


def test_database_url_quotes_credentials() -> None:
    url = database_url("postgresql://postgres@db.local:6543/postgres", "app", "app", "p@ss:w/rd")

    assert url == "postgresql+psycopg://app:p%40ss%3Aw%2Frd@db.local:6543/app"


def test_make_database_gives_a_fresh_database_for_sqlalchemy(make_database: MakeDatabase) -> None:
    first, second = make_database("Devstack Fixture!"), make_database("Devstack Fixture!")

    assert first != second
    engine = sqlalchemy.create_engine(first)
    try:
        with engine.connect() as conn:
            name = conn.execute(sqlalchemy.text("SELECT current_database()")).scalar_one()
            user = conn.execute(sqlalchemy.text("SELECT current_user")).scalar_one()
    finally:
        engine.dispose()
    assert name == user
    assert name.startswith("devstack_fixture_")


def test_analyzing_after_a_load_gives_the_planner_the_tables_row_counts(
    postgres_admin_url: str, make_database: MakeDatabase
) -> None:
    database = make_url(make_database("Analyzed")).database
    assert database is not None
    url = conninfo.make_conninfo(postgres_admin_url, dbname=database)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE loaded (id int)")
        conn.execute("INSERT INTO loaded SELECT generate_series(1, 5000)")

    analyzed = analyze_databases(postgres_admin_url, [database, "medstation_no_such_database"])

    assert analyzed == [database]
    with psycopg.connect(url) as conn:
        [(rows,)] = conn.execute("SELECT reltuples FROM pg_class WHERE relname = 'loaded'")
    assert rows == 5000
