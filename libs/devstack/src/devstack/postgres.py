"""A PostgreSQL server to use, and one database + login role per service on it.

The server named by MEDSTATION_POSTGRES_ADMIN_URL is used when it accepts connections.
When it is a local address that refuses them, this machine's Debian cluster on that port
is started (created first if the package is installed but has no cluster).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import quote

import psycopg
from psycopg import conninfo, sql
from psycopg.conninfo import conninfo_to_dict

ADMIN_URL_ENV = "MEDSTATION_POSTGRES_ADMIN_URL"
DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"

# Serialises provisioning between concurrent runs (make run next to make test).
_PROVISIONING_LOCK = 0x6D656473  # "meds"
_CREATE_ROLE = sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}")
_ALTER_ROLE = sql.SQL("ALTER ROLE {} LOGIN PASSWORD {}")
_HBA_MARKER = "# added by MedStation devstack: passwordless loopback for local development"

Problem = Literal["unreachable", "starting", "auth"]


class PostgresUnavailableError(RuntimeError):
    """No usable PostgreSQL server, with what to do about it."""


@dataclass(frozen=True)
class Cluster:
    """A Debian `postgresql-common` cluster, as `pg_lsclusters` lists it."""

    version: str
    name: str
    port: int
    online: bool
    owner: str

    @property
    def hba_file(self) -> Path:
        return Path("/etc/postgresql") / self.version / self.name / "pg_hba.conf"


def admin_url_from_env(environ: Mapping[str, str] = os.environ) -> str:
    return environ.get(ADMIN_URL_ENV) or DEFAULT_ADMIN_URL


def ensure_postgres(admin_url: str, timeout: float = 60.0) -> str:
    """Return `admin_url` once a server accepts it, starting the local cluster if needed."""
    problem = _probe(admin_url)
    if problem is None:
        return admin_url
    host, port = _host_port(admin_url)
    if not _is_local(host):
        raise PostgresUnavailableError(f"PostgreSQL at {host}:{port} is not usable ({problem})")
    if problem == "unreachable":
        _start(_local_cluster(port) or _create_cluster(port))
    if _wait_until_answering(admin_url, timeout) == "auth":
        _trust_loopback(_require_cluster(port))
        if _wait_until_answering(admin_url, timeout) == "auth":
            raise PostgresUnavailableError(
                f"PostgreSQL on port {port} rejects {_redact(admin_url)}"
            )
    return admin_url


def ensure_database(admin_url: str, database: str, role: str, password: str) -> None:
    """Create the LOGIN role and its own database if absent; only that role may connect.

    Idempotent: an existing role gets `password` again, an existing database keeps its data.
    """
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=10) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_PROVISIONING_LOCK,))
        role_id, db_id = sql.Identifier(role), sql.Identifier(database)
        role_exists = _exists(conn, "pg_roles", "rolname", role)
        statement = _ALTER_ROLE if role_exists else _CREATE_ROLE
        conn.execute(statement.format(role_id, sql.Literal(password)))
        if not _exists(conn, "pg_database", "datname", database):
            conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(db_id, role_id))
        conn.execute(sql.SQL("REVOKE CONNECT, TEMPORARY ON DATABASE {} FROM PUBLIC").format(db_id))
        conn.execute(
            sql.SQL("GRANT CONNECT, TEMPORARY ON DATABASE {} TO {}").format(db_id, role_id)
        )


def drop_database(admin_url: str, database: str, role: str) -> None:
    """Drop the database (disconnecting its sessions) and its role; absent ones are fine."""
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=10) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database))
        )
        conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def analyze_databases(admin_url: str, databases: Sequence[str]) -> list[str]:
    """ANALYZE each of `databases` that exists; the ones analyzed.

    After a bulk load, as pgbench does after its own: the planner otherwise keeps the
    default estimates of an empty table until autovacuum analyzes it, and on servers
    where autovacuum is off (this project's machines run so) it never does. The plans the
    services prepare in the meantime stay with them.
    """
    analyzed = []
    for database in databases:
        if not _exists_database(admin_url, database):
            continue
        url = conninfo.make_conninfo(admin_url, dbname=database)
        with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
            conn.execute("ANALYZE")
        analyzed.append(database)
    return analyzed


def _exists_database(admin_url: str, database: str) -> bool:
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=10) as conn:
        found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [database])
        return found.fetchone() is not None


def database_url(
    admin_url: str, database: str, role: str, password: str, scheme: str = "postgresql+psycopg"
) -> str:
    """The URL a service uses: same server as `admin_url`, its own role and database."""
    host, port = _host_port(admin_url)
    credentials = f"{quote(role, safe='')}:{quote(password, safe='')}"
    return f"{scheme}://{credentials}@{host}:{port}/{quote(database, safe='')}"


def _exists(
    conn: psycopg.Connection[tuple[object, ...]], table: str, column: str, name: str
) -> bool:
    query = sql.SQL("SELECT 1 FROM {} WHERE {} = %s").format(
        sql.Identifier("pg_catalog", table), sql.Identifier(column)
    )
    return conn.execute(query, (name,)).fetchone() is not None


def _probe(admin_url: str) -> Problem | None:
    try:
        with psycopg.connect(admin_url, connect_timeout=3):
            return None
    except psycopg.OperationalError as error:
        return _classify(str(error))


def _classify(message: str) -> Problem:
    lowered = message.lower()
    if "starting up" in lowered or "shutting down" in lowered:
        return "starting"
    if any(hint in lowered for hint in ("authentication failed", "no password", "pg_hba.conf")):
        return "auth"
    return "unreachable"


def _wait_until_answering(admin_url: str, timeout: float) -> Literal["auth"] | None:
    deadline = time.monotonic() + timeout
    while (problem := _probe(admin_url)) in ("unreachable", "starting"):
        if time.monotonic() > deadline:
            raise PostgresUnavailableError(
                f"PostgreSQL did not accept {_redact(admin_url)} within {timeout:.0f} s"
            )
        time.sleep(0.1)  # poll interval between connection attempts, not a readiness guess
    return "auth" if problem == "auth" else None


def _host_port(url: str) -> tuple[str, int]:
    params = conninfo_to_dict(url)
    return str(params.get("host") or "127.0.0.1"), int(params.get("port") or 5432)


def _is_local(host: str) -> bool:
    return host in ("127.0.0.1", "localhost", "::1") or host.startswith("/")


def _redact(url: str) -> str:
    params = conninfo_to_dict(url)
    return f"user={params.get('user')} host={params.get('host')} port={params.get('port')}"


def _clusters() -> list[Cluster]:
    if shutil.which("pg_lsclusters") is None:
        return []
    listing = subprocess.run(
        ["pg_lsclusters", "--no-header"], check=True, capture_output=True, text=True
    ).stdout
    clusters = []
    for line in listing.splitlines():
        version, name, port, status, owner, *_ = line.split()
        clusters.append(Cluster(version, name, int(port), status.startswith("online"), owner))
    return clusters


def _local_cluster(port: int) -> Cluster | None:
    return next((cluster for cluster in _clusters() if cluster.port == port), None)


def _require_cluster(port: int) -> Cluster:
    cluster = _local_cluster(port)
    if cluster is None:
        raise PostgresUnavailableError(f"no local PostgreSQL cluster listens on port {port}")
    return cluster


def _create_cluster(port: int) -> Cluster:
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not versions or shutil.which("pg_createcluster") is None:
        raise PostgresUnavailableError(
            "PostgreSQL is not installed: run `make venv` (installs Debian's postgresql as root) "
            f"or set {ADMIN_URL_ENV} to a server you have"
        )
    version = versions[-1].parts[-3]
    if any(c.version == version and c.name == "main" for c in _clusters()):
        raise PostgresUnavailableError(
            f"PostgreSQL {version}/main exists but not on port {port}: set {ADMIN_URL_ENV}"
        )
    _announce(f"creating PostgreSQL cluster {version}/main on port {port}")
    # pg_createcluster runs initdb as the cluster owner itself (initdb refuses root).
    subprocess.run(
        ["pg_createcluster", "--port", str(port), version, "main", "--", "--auth-host=trust"],
        check=True,
    )
    return _require_cluster(port)


def _start(cluster: Cluster) -> None:
    if cluster.online:
        return
    _announce(
        f"starting PostgreSQL cluster {cluster.version}/{cluster.name} on port {cluster.port}"
    )
    # As root, pg_ctlcluster creates /var/run/postgresql and drops to the cluster owner
    # before running pg_ctl; started as `postgres` it could not create that directory.
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", cluster.version, cluster.name, "start"],
        check=True,
    )


def _trust_loopback(cluster: Cluster) -> None:
    """Let the local admin role in over loopback, as on the reference development machine."""
    hba = cluster.hba_file
    if os.geteuid() != 0 or not hba.is_file() or _HBA_MARKER in hba.read_text():
        raise PostgresUnavailableError(
            f"PostgreSQL {cluster.version}/{cluster.name} refuses a passwordless login on "
            f"127.0.0.1: set {ADMIN_URL_ENV} with a password, or allow trust in {hba}"
        )
    _announce(f"allowing passwordless loopback logins in {hba} (local development machine)")
    rules = f"{_HBA_MARKER}\nhost all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\n"
    hba.write_text(rules + hba.read_text())
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", cluster.version, cluster.name, "reload"],
        check=True,
    )


def _announce(message: str) -> None:
    sys.stderr.write(f"devstack: {message}\n")
