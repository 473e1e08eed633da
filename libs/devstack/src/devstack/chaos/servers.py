"""A PostgreSQL and a Redis of the fault suite's own, which it may crash and restart at will.

The machine's shared servers (5432, 6379) run other people's tests: the suite never stops
them. `OwnPostgres` is a throwaway cluster (initdb into a temporary directory, as the
`postgres` user when we are root, because initdb and pg_ctl refuse to run as root) on a
free port; `OwnRedis` a redis-server child on a free port, keeping nothing on disk like
the machine's own (a restart loses every key and stream).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg
import redis

from devstack.ports import free_port

_POLL_SECONDS = 0.05


class ServerError(RuntimeError):
    """A server of our own could not be created, started or stopped; says why."""


def _postgres_bin() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    if found:
        return found[-1].parent
    if pg_ctl := shutil.which("pg_ctl"):
        return Path(pg_ctl).parent
    raise ServerError("PostgreSQL's pg_ctl is not installed (apt-get install postgresql)")


class OwnPostgres:
    """`with OwnPostgres(workdir) as pg:` — a fresh cluster; `pg.admin_url` to provision."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self._bin = _postgres_bin()
        # Outside `workdir` (which may sit in a 0700 pytest directory): the server runs as
        # `postgres` and must reach its data directory and socket.
        self._root = Path(tempfile.mkdtemp(prefix="medstation-chaos-pg-"))
        self.data_dir = self._root / "data"
        # Written by the server, so beside its data; copied into `workdir` at the end.
        self.log_path = self._root / "postgres.log"
        self._kept_log = workdir / "postgres.log"
        self._owner = _server_owner()

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def __enter__(self) -> OwnPostgres:
        try:
            self.create()
            self.start()
        except BaseException:
            self.destroy()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.destroy()

    def create(self) -> None:
        if self._owner is not None:
            os.chown(self._root, self._owner.pw_uid, self._owner.pw_gid)
        self._run(
            "initdb", "-D", str(self.data_dir), "-U", "postgres", "--auth=trust",
            "-E", "UTF8", "--locale=C.UTF-8", "--no-sync", "--no-instructions",
        )  # fmt: skip

    def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self._root} "
            "-c max_connections=200 -c shared_buffers=32MB"
        )
        self._run(
            "pg_ctl", "-D", str(self.data_dir), "-l", str(self.log_path),
            "-o", options, "-w", "-t", "60", "start",
        )  # fmt: skip
        self.wait_until_accepting(60.0)

    def restart_immediate(self) -> None:
        """`pg_ctl restart -m immediate`: every backend killed, crash recovery at start."""
        self._run(
            "pg_ctl", "-D", str(self.data_dir), "-l", str(self.log_path),
            "-m", "immediate", "-w", "-t", "60", "restart",
        )  # fmt: skip

    def wait_until_accepting(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with psycopg.connect(self.admin_url, connect_timeout=2):
                    return
            except psycopg.OperationalError as error:
                if time.monotonic() > deadline:
                    raise ServerError(f"own PostgreSQL not accepting: {error}") from error
            time.sleep(_POLL_SECONDS)

    def destroy(self) -> None:
        if (self.data_dir / "postmaster.pid").exists():
            with contextlib.suppress(ServerError):
                self._run("pg_ctl", "-D", str(self.data_dir), "-m", "immediate", "-w", "stop")
        with contextlib.suppress(OSError):
            self._kept_log.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(self.log_path, self._kept_log)
        shutil.rmtree(self._root, ignore_errors=True)

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self._bin / tool), *args]
        if self._owner is not None:
            command = ["runuser", "-u", self._owner.pw_name, "--", *command]
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=120, check=False, cwd=self._root
        )
        if result.returncode != 0:
            raise ServerError(
                f"{tool} failed ({result.returncode}):\n{result.stdout}{result.stderr}"
                f"\n{_tail(self.log_path)}"
            )


def _server_owner() -> pwd.struct_passwd | None:
    """Who runs PostgreSQL: `postgres` when we are root (it refuses root), else ourselves."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam("postgres")
    except KeyError as error:
        raise ServerError("running as root needs a `postgres` user for initdb") from error


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


class OwnRedis:
    """A redis-server child that can be stopped and started again on the same port."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self._workdir = workdir
        self.log_path = workdir / "redis.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def __enter__(self) -> OwnRedis:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = 30.0) -> None:
        server = shutil.which("redis-server")
        if server is None:
            raise ServerError("redis-server is not installed (apt-get install redis-server)")
        self._workdir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [
                    server,
                    "--port", str(self.port),
                    "--bind", "127.0.0.1",
                    "--save", "",
                    "--appendonly", "no",
                    "--dir", str(self._workdir),
                ],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while not self._answers():
            if not self.running or time.monotonic() > deadline:
                raise ServerError(f"own redis-server did not start:\n{_tail(self.log_path)}")
            time.sleep(_POLL_SECONDS)

    def stop(self) -> None:
        """SIGTERM (nothing is saved: --save ""), SIGKILL if it lingers."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)

    def _answers(self) -> bool:
        client = redis.Redis.from_url(self.url, socket_connect_timeout=1, socket_timeout=1)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()
