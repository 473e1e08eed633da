"""The system under fault: every service as real processes, on servers of the suite's own.

Like `make run`, with what faults need: patient-record in several replicas behind one
Envoy cluster, a PostgreSQL and a Redis the suite may crash (chaos.servers), a deadline-
recording relay between patient-record and the services that call it, and job timings
short enough that a dead worker's job is taken over within seconds. Every process is a
`Member` the scenarios may signal, wait for and start again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from devstack import envoy, gateway_config
from devstack.chaos.deadline_proxy import read_calls
from devstack.chaos.servers import OwnPostgres, OwnRedis
from devstack.health import wait_for_grpc_health, wait_for_grpc_health_async
from devstack.ports import free_port
from devstack.postgres import database_url, ensure_database
from devstack.services import SERVICES, ServiceEntry, present_services, service_by_key

LOCAL_HOST = "127.0.0.1"
PATIENT = "patient-record"
WORKER = "summary-worker"
PROXY = "deadline-proxy"
ADMIN_PASSWORD = "chaos-admin-password-123"  # noqa: S105  # a throwaway local account
_READY_TIMEOUT = 60.0
_POLL_SECONDS = 0.05

# The suite's job timings: a dead worker's job is taken over after seconds, not the
# production half minute (the mechanism is the same, only the numbers are smaller).
JOB_SETTINGS = {
    "MEDSTATION_JOB_LEASE_SECONDS": "2",
    "MEDSTATION_JOB_CLAIM_IDLE_SECONDS": "4",
    "MEDSTATION_JOB_TIMEOUT_SECONDS": "20",
    "MEDSTATION_JOB_REQUEUE_AFTER_SECONDS": "3",
    "MEDSTATION_RECONCILE_INTERVAL_SECONDS": "1",
}


@dataclass
class Member:
    """One process of the stack, which a scenario may signal and start again."""

    name: str
    argv: tuple[str, ...]
    env: dict[str, str]
    port: int
    health_service: str  # what readiness means: the proto service, or "" (worker, relay)
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"{LOCAL_HOST}:{self.port}"

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            log.write(f"---- {time.strftime('%H:%M:%S')} starting {self.name}\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                list(self.argv),
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def wait_ready(self, timeout: float = _READY_TIMEOUT) -> None:
        try:
            wait_for_grpc_health(self.address, self.health_service, timeout)
        except TimeoutError as error:
            raise RuntimeError(f"{self.name} not ready:\n{self.log_tail()}") from error

    async def wait_ready_async(self) -> None:
        def exited() -> str | None:
            return None if self.alive else f"{self.name} exited:\n{self.log_tail()}"

        await wait_for_grpc_health_async(self.address, self.health_service, _READY_TIMEOUT, exited)

    def send(self, signum: signal.Signals) -> None:
        if self.alive:
            assert self.process is not None  # noqa: S101  # alive implies a process
            os.killpg(self.process.pid, signum)

    def wait_exit(self, timeout: float) -> int | None:
        """The exit code, or None when still running after `timeout`."""
        if self.process is None:
            return None
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, grace: float = 15.0) -> None:
        self.send(signal.SIGTERM)
        if self.wait_exit(grace) is None:
            self.send(signal.SIGKILL)
            self.wait_exit(10)

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


@dataclass(frozen=True)
class ChaosConfig:
    workdir: Path
    patient_replicas: int = 2
    python: str = sys.executable
    log_level: str = "WARNING"  # one JSON line per RPC at INFO would cost the load its CPU
    repo_root: Path = field(default_factory=gateway_config.repo_root)


@dataclass
class ChaosStack:
    """Handles to everything started: members by name, servers, the gateway, data names."""

    config: ChaosConfig
    postgres: OwnPostgres
    redis: OwnRedis
    members: dict[str, Member]
    database_urls: dict[str, str]
    gateway_url: str
    envoy_admin_url: str
    admin_email: str
    events_stream: str
    jobs_stream: str
    proxy_calls_path: Path

    def patient_replicas(self) -> list[Member]:
        return [m for name, m in self.members.items() if name.startswith(PATIENT)]

    def deadline_calls(self) -> list[dict[str, object]]:
        return read_calls(self.proxy_calls_path)

    def report(self) -> str:
        """Each member's state and log tail, for a failure's explanation."""
        sections = []
        for member in self.members.values():
            state = "running" if member.alive else "exited"
            sections.append(f"--- {member.name} ({state}) ---\n{member.log_tail(15)}")
        return "\n".join(sections)


def _replica_name(key: str, replica: int) -> str:
    return key if replica == 0 else f"{key}-{replica + 1}"


@contextlib.contextmanager
def running_chaos_stack(config: ChaosConfig) -> Iterator[ChaosStack]:
    """Start everything (servers, migrations, services, Envoy); stop it all afterwards."""
    config.workdir.mkdir(parents=True, exist_ok=True)
    members: dict[str, Member] = {}
    envoy_process: envoy.EnvoyProcess | None = None
    with OwnPostgres(config.workdir) as postgres, OwnRedis(config.workdir) as redis_server:
        try:
            stack = _start(config, postgres, redis_server, members)
            envoy_process = _start_envoy(config, stack)
            yield stack
        finally:
            if envoy_process is not None:
                envoy_process.stop()
            for member in reversed(list(members.values())):
                member.stop()


def _start(
    config: ChaosConfig, postgres: OwnPostgres, redis_server: OwnRedis, members: dict[str, Member]
) -> ChaosStack:
    entries = present_services(config.repo_root)
    if {entry.key for entry in entries} != {service.key for service in SERVICES}:
        raise RuntimeError("the fault suite needs every service in this checkout")
    ports = {
        _replica_name(entry.key, replica): free_port()
        for entry in entries
        for replica in range(config.patient_replicas if entry.key == PATIENT else 1)
    }
    ports |= {WORKER: free_port(), PROXY: free_port()}
    patient_target = "ipv4:" + ",".join(
        f"{LOCAL_HOST}:{port}" for name, port in ports.items() if name.startswith(PATIENT)
    )
    suffix = secrets.token_hex(3)
    admin_email = f"chaos-admin-{suffix}@chaos.test"
    proxy_calls = config.workdir / "deadline-calls.jsonl"
    proxy_calls.write_text("")
    common = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "MEDSTATION_REDIS_URL": redis_server.url,
        "MEDSTATION_USER_SERVICE_ADDR": f"{LOCAL_HOST}:{ports['user']}",
        # Summary, its worker and chat reach patient-record through the recording relay.
        "MEDSTATION_PATIENT_SERVICE_ADDR": f"{LOCAL_HOST}:{ports[PROXY]}",
        "MEDSTATION_SUMMARY_SERVICE_ADDR": f"{LOCAL_HOST}:{ports['summary']}",
        "MEDSTATION_CHAT_SERVICE_ADDR": f"{LOCAL_HOST}:{ports['chat']}",
        "MEDSTATION_ADMIN_EMAIL": admin_email,
        "MEDSTATION_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "MEDSTATION_METRICS_PORT": "0",
        "MEDSTATION_LOG_LEVEL": config.log_level,
        # Load comes from one account: the per-user message limit is not under test here.
        "MEDSTATION_RATE_LIMIT_MESSAGES": "1000000",
        "OTEL_TRACES_EXPORTER": "none",
        **JOB_SETTINGS,
    }
    database_urls = _provision(postgres, entries, suffix)
    env_by_key = {
        entry.key: {**common, "MEDSTATION_DATABASE_URL": database_urls[entry.key]}
        for entry in entries
    }
    _migrate_all(config, entries, env_by_key)
    proxy = Member(
        PROXY,
        (
            config.python, "-m", "devstack.chaos.deadline_proxy", "--port", str(ports[PROXY]),
            "--upstream", patient_target, "--out", str(proxy_calls),
        ),
        dict(common), ports[PROXY], "", config.workdir / f"{PROXY}.log",
    )  # fmt: skip
    members[PROXY] = proxy
    for name, port in ports.items():
        if name in (PROXY, WORKER):
            continue
        entry = service_by_key(PATIENT if name.startswith(PATIENT) else name)
        members[name] = _service_member(config, entry, name, port, env_by_key[entry.key])
    summary = service_by_key("summary")
    (worker_entry,) = summary.workers
    members[WORKER] = Member(
        WORKER,
        (config.python, "-m", summary.package, worker_entry.command),
        {**env_by_key["summary"], "MEDSTATION_GRPC_PORT": str(ports[WORKER])},
        ports[WORKER], "", config.workdir / f"{WORKER}.log",
    )  # fmt: skip
    # All at once (the user service first, whose keys the others fetch): startup is
    # mostly imports, and two cores overlap them well enough.
    for member in members.values():
        member.start()
    for member in members.values():
        member.wait_ready()
    return ChaosStack(
        config=config,
        postgres=postgres,
        redis=redis_server,
        members=members,
        database_urls=database_urls,
        gateway_url="",
        envoy_admin_url="",
        admin_email=admin_email,
        events_stream="medstation.patient.events",
        jobs_stream="medstation.summary.jobs",
        proxy_calls_path=proxy_calls,
    )


def _service_member(
    config: ChaosConfig, entry: ServiceEntry, name: str, port: int, env: Mapping[str, str]
) -> Member:
    return Member(
        name,
        (config.python, "-m", entry.package),
        {**env, "MEDSTATION_GRPC_PORT": str(port), "OTEL_SERVICE_NAME": name},
        port,
        entry.proto_service,
        config.workdir / f"{name}.log",
    )


def _provision(postgres: OwnPostgres, entries: list[ServiceEntry], suffix: str) -> dict[str, str]:
    urls = {}
    for entry in entries:
        password = secrets.token_hex(8)
        ensure_database(postgres.admin_url, entry.database, entry.role, password)
        urls[entry.key] = database_url(postgres.admin_url, entry.database, entry.role, password)
    return urls


def _migrate_all(
    config: ChaosConfig, entries: list[ServiceEntry], env_by_key: dict[str, dict[str, str]]
) -> None:
    running = {
        entry.key: subprocess.Popen(
            [config.python, "-m", entry.package, "migrate"],
            env=env_by_key[entry.key],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for entry in entries
    }
    for key, process in running.items():
        output, _ = process.communicate(timeout=180)
        if process.returncode != 0:
            raise RuntimeError(f"migrating {key} failed:\n{output.decode()[-3000:]}")


def _start_envoy(config: ChaosConfig, stack: ChaosStack) -> envoy.EnvoyProcess:
    descriptor = config.repo_root / gateway_config.DESCRIPTOR_RELATIVE_PATH
    upstreams = []
    for entry in SERVICES:
        replicas = stack.patient_replicas() if entry.key == PATIENT else [stack.members[entry.key]]
        first, *others = replicas
        upstreams.append(
            gateway_config.upstream_from_descriptor(
                entry.key,
                entry.proto_service,
                LOCAL_HOST,
                first.port,
                str(descriptor),
                extra_endpoints=tuple((LOCAL_HOST, member.port) for member in others),
            )
        )
    # The suite's load comes from one address and one account: the gateway's own token
    # bucket would turn it into 429s, which are not what is measured here.
    limits = {
        "MEDSTATION_GATEWAY_RATE_LIMIT_PER_SECOND": "1000000",
        "MEDSTATION_GATEWAY_RATE_LIMIT_BURST": "1000000",
    }
    options = gateway_config.options_from_env(tuple(upstreams), str(descriptor), env=limits)
    options = dataclasses.replace(options, listen_port=free_port(), admin_port=free_port())
    path = config.workdir / "envoy.yaml"
    path.write_text(gateway_config.render_gateway_config(options), encoding="utf-8")
    process = envoy.start_envoy(path, config.workdir / "envoy.log")
    stack.gateway_url = f"http://{LOCAL_HOST}:{options.listen_port}"
    stack.envoy_admin_url = process.admin_url
    wait_healthz(stack.gateway_url, _READY_TIMEOUT)
    return process


def wait_healthz(gateway_url: str, timeout: float) -> None:
    """Until /healthz is 200: every host of every cluster passes its health check."""
    deadline = time.monotonic() + timeout
    status: int | None = None
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            status = httpx.get(f"{gateway_url}/healthz", timeout=2).status_code
            if status == httpx.codes.OK:
                return
        time.sleep(_POLL_SECONDS)
    raise RuntimeError(f"/healthz stayed {status} for {timeout} s")
