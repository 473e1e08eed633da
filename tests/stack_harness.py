"""What end-to-end tests run against: real PostgreSQL, Redis, services and Envoy.

Everything runs on free ports with databases named for this test run, so the suite can
run beside a `make run` and leaves nothing behind.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import httpx
import redis

from devstack import envoy, gateway_config
from devstack.health import wait_for_grpc_health
from devstack.ports import free_port
from devstack.postgres import (
    admin_url_from_env,
    database_url,
    drop_database,
    ensure_database,
    ensure_postgres,
)
from devstack.redis import ensure_redis, redis_url_from_env
from devstack.services import present_services, service_by_key

REPO_ROOT = Path(__file__).resolve().parents[1]
ADMIN_PASSWORD = "e2e-admin-password-123"  # a throwaway test account


@dataclass
class ServiceProcess:
    """One service (or worker) as a real OS process, which tests may kill and start again.

    `command` is empty for a service, the worker's command word for a worker; a worker
    answers health for `""` only.
    """

    key: str
    env: dict[str, str]
    log_path: Path
    package: str
    health_service: str
    command: tuple[str, ...] = ()
    process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.env['MEDSTATION_GRPC_PORT']}"

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", self.package, *self.command],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        try:
            wait_for_grpc_health(self.address, self.health_service, timeout=30)
        except TimeoutError as error:
            raise RuntimeError(f"{self.key} did not start:\n{self.log_tail()}") from error

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


@dataclass
class Stack:
    gateway_url: str
    envoy_admin_url: str
    services: dict[str, ServiceProcess]
    workers: dict[str, ServiceProcess]
    admin_email: str
    admin_password: str
    traces_path: Path
    run_dir: Path
    _cleanups: list[object] = field(default_factory=list)

    @property
    def user_grpc(self) -> str:
        return self.services["user"].address


def _migrate(service: ServiceProcess) -> None:
    result = subprocess.run(  # our own interpreter and module
        [sys.executable, "-m", service.package, "migrate"],
        env=service.env,
        capture_output=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"migrating {service.key} failed:\n{result.stderr.decode()[-3000:]}")


def _delete_keys(redis_url: str, keys: list[str]) -> None:
    client = redis.Redis.from_url(redis_url, socket_timeout=5)
    try:
        client.delete(*keys)
    except redis.RedisError:
        pass  # Redis already gone: nothing of ours is left in it
    finally:
        client.close()


def wait_healthz(url: str, expected: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    status = None
    while time.monotonic() < deadline:
        try:
            status = httpx.get(f"{url}/healthz", timeout=2).status_code
        except httpx.HTTPError:
            status = None
        if status == expected:
            return
        time.sleep(0.1)
    raise AssertionError(f"/healthz stayed {status}, expected {expected}")


@dataclass(frozen=True)
class Account:
    id: str
    email: str
    password: str
    access_token: str
    refresh_token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


class Accounts:
    """Creates and signs in users through the public REST API."""

    def __init__(self, api: httpx.Client, stack: Stack) -> None:
        self._api = api
        self._stack = stack

    def login(self, email: str, password: str) -> dict[str, object]:
        response = self._api.post("/v1/auth/login", json={"email": email, "password": password})
        assert response.status_code == 200, response.text
        body: dict[str, object] = response.json()
        return body

    def clinician(self) -> Account:
        email = f"clinician-{secrets.token_hex(6)}@e2e.test"
        password = "a-long-enough-password"
        response = self._api.post(
            "/v1/auth/register",
            json={"email": email, "password": password, "display_name": "Dr E2E"},
        )
        assert response.status_code == 200, response.text
        tokens = self.login(email, password)
        return Account(
            response.json()["id"],
            email,
            password,
            str(tokens["access_token"]),
            str(tokens["refresh_token"]),
        )

    def admin(self) -> Account:
        tokens = self.login(self._stack.admin_email, self._stack.admin_password)
        me = self._api.get(
            "/v1/users/me", headers={"Authorization": f"Bearer {tokens['access_token']}"}
        ).json()
        return Account(
            me["id"],
            self._stack.admin_email,
            self._stack.admin_password,
            str(tokens["access_token"]),
            str(tokens["refresh_token"]),
        )


@contextmanager
def running_stack(run_dir: Path) -> Iterator[Stack]:
    admin_url = ensure_postgres(admin_url_from_env())
    redis_url = ensure_redis(redis_url_from_env(), run_dir)
    suffix = secrets.token_hex(4)
    sink_port = free_port()
    traces_path = run_dir / "traces.jsonl"
    sink = subprocess.Popen(
        [sys.executable, "-m", "devstack", "trace-sink", "--host", "127.0.0.1",
         "--port", str(sink_port), "--out", str(traces_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    wait_for_grpc_health(f"127.0.0.1:{sink_port}", "", timeout=30)
    otlp = f"http://127.0.0.1:{sink_port}"
    admin_email = f"admin-{suffix}@e2e.test"
    databases: list[tuple[str, str]] = []
    services: dict[str, ServiceProcess] = {}
    workers: dict[str, ServiceProcess] = {}
    envoy_process = None
    entries = present_services(REPO_ROOT)
    # Every service may call any other, so every address is known before any starts.
    grpc_ports = {entry.key: free_port() for entry in entries}
    addresses = {entry.address_variable: f"127.0.0.1:{grpc_ports[entry.key]}" for entry in entries}
    # Redis is shared with anything else running here (a `make run`, another test run):
    # streams of our own, or another stack's workers would take our jobs and events.
    streams = {
        "MEDSTATION_EVENTS_STREAM": f"medstation.patient.events.e2e_{suffix}",
        "MEDSTATION_JOBS_STREAM": f"medstation.summary.jobs.e2e_{suffix}",
    }
    try:
        # Registry order: the user service first, whose JWKS the others fetch.
        for entry in entries:
            key = entry.key
            database, role = f"{entry.database}_e2e_{suffix}", f"{entry.role}_e2e_{suffix}"
            password = secrets.token_hex(8)
            ensure_database(admin_url, database, role, password)
            databases.append((database, role))
            env = {
                **os.environ,
                **addresses,
                "PYTHONUNBUFFERED": "1",
                "MEDSTATION_GRPC_PORT": str(grpc_ports[key]),
                "MEDSTATION_METRICS_PORT": str(free_port()),
                "MEDSTATION_DATABASE_URL": database_url(admin_url, database, role, password),
                "MEDSTATION_REDIS_URL": redis_url,
                **streams,
                "MEDSTATION_ADMIN_EMAIL": admin_email,
                "MEDSTATION_ADMIN_PASSWORD": ADMIN_PASSWORD,
                "OTEL_EXPORTER_OTLP_ENDPOINT": otlp,
                "OTEL_SERVICE_NAME": key,
                # Export quickly so trace assertions need not wait for the batch timer.
                "OTEL_BSP_SCHEDULE_DELAY": "200",
            }
            service = ServiceProcess(
                key, env, run_dir / f"{key}.log", entry.package, entry.proto_service
            )
            _migrate(service)
            service.start()
            services[key] = service
            for worker_entry in entry.workers:
                worker_env = {
                    **env,
                    "MEDSTATION_GRPC_PORT": str(free_port()),
                    "MEDSTATION_METRICS_PORT": str(free_port()),
                    "OTEL_SERVICE_NAME": worker_entry.key,
                }
                worker = ServiceProcess(
                    worker_entry.key, worker_env, run_dir / f"{worker_entry.key}.log",
                    entry.package, "", (worker_entry.command,),
                )  # fmt: skip
                worker.start()
                workers[worker_entry.key] = worker
        descriptor = REPO_ROOT / gateway_config.DESCRIPTOR_RELATIVE_PATH
        upstreams = tuple(
            gateway_config.upstream_from_descriptor(
                key, service_by_key(key).proto_service, "127.0.0.1",
                int(service.env["MEDSTATION_GRPC_PORT"]), str(descriptor),
            )
            for key, service in services.items()
        )  # fmt: skip
        options = gateway_config.options_from_env(
            upstreams, str(descriptor), env={"OTEL_EXPORTER_OTLP_ENDPOINT": otlp}
        )
        options = replace(options, listen_port=free_port(), admin_port=free_port())
        config_path = run_dir / "envoy.yaml"
        config_path.write_text(gateway_config.render_gateway_config(options), encoding="utf-8")
        envoy_process = envoy.start_envoy(config_path, run_dir / "envoy.log")
        gateway_url = f"http://127.0.0.1:{options.listen_port}"
        wait_healthz(gateway_url, 200)
        yield Stack(
            gateway_url=gateway_url,
            envoy_admin_url=envoy_process.admin_url,
            services=services,
            workers=workers,
            admin_email=admin_email,
            admin_password=ADMIN_PASSWORD,
            traces_path=traces_path,
            run_dir=run_dir,
        )
    finally:
        if envoy_process is not None:
            envoy_process.stop()
        for process in [*workers.values(), *services.values()]:
            process.stop()
        sink.terminate()
        sink.wait(10)
        for database, role in databases:
            drop_database(admin_url, database, role)
        _delete_keys(redis_url, list(streams.values()))
