"""The whole local system, as `make run` starts it: infrastructure, services, gateway.

Order: ports checked, PostgreSQL and Redis ensured, trace sink; then per service its
database and role, its migrations, the service itself; Envoy last. Each step waits for
a health answer before the next. Ctrl-C or SIGTERM stops everything and exits 0.

MEDSTATION_REPLICAS runs several processes of a service or worker: `2` (each of them) or
`patient-record=2,summary-worker=3`. Replica n (from 0) listens on the first one's ports
plus n * 100 and is named `<key>-<n+1>`; Envoy balances over every replica of a service,
and the services reach each other's replicas round robin (an `ipv4:` address list).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from devstack import envoy, gateway_config
from devstack.health import wait_for_grpc_health_async, wait_for_http_ok
from devstack.ports import ensure_ports_free
from devstack.postgres import database_url, ensure_database, ensure_postgres
from devstack.redis import ensure_redis
from devstack.services import SERVICES, ServiceEntry, WorkerEntry, present_services
from devstack.supervisor import ProcessSpec, Supervisor

LOCAL_HOST = "127.0.0.1"
DEFAULT_ADMIN_EMAIL = "admin@medstation.local"
DEFAULT_ADMIN_PASSWORD = "change-me-admin-password"  # noqa: S105  # documented local default

REPLICAS_ENV = "MEDSTATION_REPLICAS"
# Replica n listens on the first replica's gRPC and metrics ports plus n times this.
REPLICA_PORT_STRIDE = 100
MAX_REPLICAS = 9

_GiveUp = Callable[[], str | None]


def parse_replicas(text: str) -> dict[str, int]:
    """`"2"` → {"*": 2} (every service and worker); `"patient-record=2,chat=3"` → per key."""
    text = text.strip()
    if not text:
        return {}
    if text.isdigit():
        return {"*": _replica_count(text, REPLICAS_ENV)}
    counts: dict[str, int] = {}
    for item in text.split(","):
        key, separator, count = item.strip().partition("=")
        if not separator or not key.strip():
            raise ValueError(f"{REPLICAS_ENV}: expected N or key=N[,key=N], got {text!r}")
        counts[key.strip()] = _replica_count(count.strip(), f"{REPLICAS_ENV} for {key.strip()}")
    return counts


def _replica_count(text: str, what: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= MAX_REPLICAS:
        raise ValueError(f"{what} must be a whole number from 1 to {MAX_REPLICAS}, not {text!r}")
    return int(text)


def replicas_from_env(environ: Mapping[str, str] = os.environ) -> dict[str, int]:
    return parse_replicas(environ.get(REPLICAS_ENV, ""))


def replica_name(key: str, replica: int) -> str:
    """The first replica keeps the plain name (its log, its trace name); others get -2, -3."""
    return key if replica == 0 else f"{key}-{replica + 1}"


def replica_port(port: int, replica: int) -> int:
    return port + replica * REPLICA_PORT_STRIDE


@dataclass(frozen=True)
class StackConfig:
    repo_root: Path
    postgres_admin_url: str
    redis_url: str
    python: str = sys.executable
    sink_port: int = 4317
    gateway_port: int = 8080
    envoy_admin_port: int = 9901
    ready_timeout: float = 60.0
    # Processes per service or worker key ("*": all); see parse_replicas.
    replicas: Mapping[str, int] = field(default_factory=replicas_from_env)

    def replica_count(self, key: str) -> int:
        return self.replicas.get(key, self.replicas.get("*", 1))

    @property
    def run_dir(self) -> Path:
        return self.repo_root / ".run"

    @property
    def otlp_endpoint(self) -> str:
        return f"http://{LOCAL_HOST}:{self.sink_port}"


def local_database_password(role: str) -> str:
    """Stable across runs, so a second `make run` reuses the databases; loopback only."""
    return f"{role}-local-dev"


def service_address(service: ServiceEntry, config: StackConfig) -> str:
    """How the others reach `service`: host:port, or every replica for round robin."""
    endpoints = [
        f"{LOCAL_HOST}:{replica_port(service.grpc_port, replica)}"
        for replica in range(config.replica_count(service.key))
    ]
    return endpoints[0] if len(endpoints) == 1 else "ipv4:" + ",".join(endpoints)


def service_env(
    service: ServiceEntry, config: StackConfig, base: Mapping[str, str], replica: int = 0
) -> dict[str, str]:
    """The environment a service process (and its migration) runs with."""
    password = local_database_password(service.role)
    env = dict(base)
    env.setdefault("MEDSTATION_ADMIN_EMAIL", DEFAULT_ADMIN_EMAIL)
    env.setdefault("MEDSTATION_ADMIN_PASSWORD", DEFAULT_ADMIN_PASSWORD)
    env.update(
        PYTHONUNBUFFERED="1",
        MEDSTATION_GRPC_HOST=LOCAL_HOST,
        MEDSTATION_GRPC_PORT=str(replica_port(service.grpc_port, replica)),
        MEDSTATION_METRICS_PORT=str(replica_port(service.metrics_port, replica)),
        MEDSTATION_DATABASE_URL=database_url(
            config.postgres_admin_url, service.database, service.role, password
        ),
        MEDSTATION_REDIS_URL=config.redis_url,
        OTEL_EXPORTER_OTLP_ENDPOINT=config.otlp_endpoint,
        OTEL_SERVICE_NAME=service.key,
    )
    # Every service may call any other: each learns every address.
    env.update({s.address_variable: service_address(s, config) for s in SERVICES})
    return env


def worker_env(
    service: ServiceEntry,
    worker: WorkerEntry,
    config: StackConfig,
    base: Mapping[str, str],
    replica: int = 0,
) -> dict[str, str]:
    """A worker runs with its service's configuration, on ports and a trace name of its own."""
    env = service_env(service, config, base)
    env.update(
        MEDSTATION_GRPC_PORT=str(replica_port(worker.grpc_port, replica)),
        MEDSTATION_METRICS_PORT=str(replica_port(worker.metrics_port, replica)),
        OTEL_SERVICE_NAME=worker.key,
    )
    return env


def required_ports(services: list[ServiceEntry], config: StackConfig) -> dict[str, int]:
    ports = {
        "gateway": config.gateway_port,
        "envoy admin": config.envoy_admin_port,
        "trace sink": config.sink_port,
    }
    for service in services:
        for replica in range(config.replica_count(service.key)):
            name = replica_name(service.key, replica)
            ports[f"{name} gRPC"] = replica_port(service.grpc_port, replica)
            ports[f"{name} metrics"] = replica_port(service.metrics_port, replica)
        for worker in service.workers:
            for replica in range(config.replica_count(worker.key)):
                name = replica_name(worker.key, replica)
                ports[f"{name} gRPC"] = replica_port(worker.grpc_port, replica)
                ports[f"{name} metrics"] = replica_port(worker.metrics_port, replica)
    return ports


async def run_stack(config: StackConfig) -> int:
    """Start everything, wait for Ctrl-C/SIGTERM, stop everything. 0 after a clean stop."""
    # Longer than a service's own shutdown grace (MEDSTATION_SHUTDOWN_GRACE_SECONDS, 10 s).
    supervisor = Supervisor(config.run_dir / "logs", grace_seconds=15.0)
    supervisor.install_signal_handlers()
    startup = asyncio.create_task(_start_all(supervisor, config))
    stop_requested = asyncio.create_task(supervisor.wait_for_stop_request())
    await asyncio.wait({startup, stop_requested}, return_when=asyncio.FIRST_COMPLETED)
    exit_code = 0
    if not startup.done():
        supervisor.say("stopping before startup finished")
        startup.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await startup
    elif (error := startup.exception()) is not None:
        _say_lines(supervisor, f"startup failed: {error}")
        exit_code = 1
    else:
        _say_lines(supervisor, startup.result())
        await stop_requested
        supervisor.say("stopping")
    stop_requested.cancel()
    await supervisor.stop()
    supervisor.say("stopped")
    return exit_code


def _say_lines(supervisor: Supervisor, text: str) -> None:
    for line in text.splitlines():
        supervisor.say(line)


async def _start_all(supervisor: Supervisor, config: StackConfig) -> str:
    services = present_services(config.repo_root)
    if not services:
        raise RuntimeError(f"no service has a pyproject.toml under {config.repo_root}/services")
    ensure_ports_free(required_ports(services, config))
    supervisor.say("ensuring PostgreSQL and Redis")
    await asyncio.to_thread(ensure_postgres, config.postgres_admin_url)
    await asyncio.to_thread(ensure_redis, config.redis_url, config.run_dir)
    await supervisor.start(_sink_spec(config))
    for service in services:
        await _start_service(supervisor, service, config)
    await supervisor.start(await _envoy_spec(services, config))
    return ready_banner(services, config)


async def _start_service(
    supervisor: Supervisor, service: ServiceEntry, config: StackConfig
) -> None:
    password = local_database_password(service.role)
    await asyncio.to_thread(
        ensure_database, config.postgres_admin_url, service.database, service.role, password
    )
    migrate_env = service_env(service, config, os.environ)
    migrate = ProcessSpec(
        f"{service.key}-migrate", (config.python, "-m", service.package, "migrate"), migrate_env
    )
    await supervisor.run_to_completion(migrate)
    for replica in range(config.replica_count(service.key)):
        env = service_env(service, config, os.environ, replica)
        address = f"{LOCAL_HOST}:{env['MEDSTATION_GRPC_PORT']}"

        async def ready(give_up: _GiveUp, address: str = address) -> None:
            await wait_for_grpc_health_async(
                address, service.proto_service, config.ready_timeout, give_up
            )

        argv = (config.python, "-m", service.package)
        name = replica_name(service.key, replica)
        await supervisor.start(ProcessSpec(name, argv, env, ready=ready))
    for worker in service.workers:
        for replica in range(config.replica_count(worker.key)):
            await _start_worker(supervisor, service, worker, config, replica)


async def _start_worker(
    supervisor: Supervisor,
    service: ServiceEntry,
    worker: WorkerEntry,
    config: StackConfig,
    replica: int = 0,
) -> None:
    env = worker_env(service, worker, config, os.environ, replica)
    address = f"{LOCAL_HOST}:{env['MEDSTATION_GRPC_PORT']}"

    async def ready(give_up: _GiveUp) -> None:
        await wait_for_grpc_health_async(address, "", config.ready_timeout, give_up)

    argv = (config.python, "-m", service.package, worker.command)
    await supervisor.start(ProcessSpec(replica_name(worker.key, replica), argv, env, ready=ready))


def _sink_spec(config: StackConfig) -> ProcessSpec:
    address = f"{LOCAL_HOST}:{config.sink_port}"

    async def ready(give_up: _GiveUp) -> None:
        await wait_for_grpc_health_async(address, "", config.ready_timeout, give_up)

    argv = (
        config.python, "-m", "devstack", "trace-sink",
        "--host", LOCAL_HOST, "--port", str(config.sink_port),
        "--out", str(config.run_dir / "traces.jsonl"),
    )  # fmt: skip
    return ProcessSpec("trace-sink", argv, {**os.environ, "PYTHONUNBUFFERED": "1"}, ready=ready)


async def _envoy_spec(services: list[ServiceEntry], config: StackConfig) -> ProcessSpec:
    path = config.run_dir / "envoy.yaml"
    descriptor = config.repo_root / gateway_config.DESCRIPTOR_RELATIVE_PATH
    options = gateway_config.profile_options(
        "local",
        descriptor,
        [service.key for service in services],
        env={**os.environ, "OTEL_EXPORTER_OTLP_ENDPOINT": config.otlp_endpoint},
    )
    options = dataclasses.replace(
        options,
        listen_port=config.gateway_port,
        admin_port=config.envoy_admin_port,
        upstreams=with_replicas(options.upstreams, services, config),
    )
    path.write_text(gateway_config.render_gateway_config(options), encoding="utf-8")
    await asyncio.to_thread(envoy.validate_config, path)
    admin_url = f"http://{LOCAL_HOST}:{config.envoy_admin_port}/ready"

    async def ready(give_up: _GiveUp) -> None:
        await wait_for_http_ok(admin_url, config.ready_timeout, give_up)

    argv = (
        str(envoy.envoy_binary()), "-c", str(path),
        "--use-dynamic-base-id", "--log-level", "warn",
    )  # fmt: skip
    return ProcessSpec("envoy", argv, dict(os.environ), ready=ready)


def with_replicas(
    upstreams: tuple[gateway_config.Upstream, ...],
    services: list[ServiceEntry],
    config: StackConfig,
) -> tuple[gateway_config.Upstream, ...]:
    """The gateway's upstreams with every further replica of each service as an endpoint."""
    by_key = {service.key: service for service in services}
    result = []
    for upstream in upstreams:
        service = by_key[upstream.name]
        extra = tuple(
            (LOCAL_HOST, replica_port(service.grpc_port, replica))
            for replica in range(1, config.replica_count(service.key))
        )
        result.append(dataclasses.replace(upstream, extra_endpoints=extra))
    return tuple(result)


def ready_banner(services: list[ServiceEntry], config: StackConfig) -> str:
    grpc_lines = "".join(
        f"\n    .venv/bin/grpcurl -plaintext {LOCAL_HOST}:{replica_port(s.grpc_port, r)} list"
        f"   # {replica_name(s.key, r)}"
        for s in services
        for r in range(config.replica_count(s.key))
    )
    worker_lines = "".join(
        f"\n  {replica_name(w.key, r):<13} started"
        f" (health on {LOCAL_HOST}:{replica_port(w.grpc_port, r)})"
        for s in services
        for w in s.workers
        for r in range(config.replica_count(w.key))
    )
    email = os.environ.get("MEDSTATION_ADMIN_EMAIL", DEFAULT_ADMIN_EMAIL)
    password = os.environ.get("MEDSTATION_ADMIN_PASSWORD", DEFAULT_ADMIN_PASSWORD)
    return (
        "MedStation is ready.\n"
        f"  REST gateway  http://{LOCAL_HOST}:{config.gateway_port}\n"
        f"    curl -s localhost:{config.gateway_port}/healthz\n"
        f"  gRPC (direct, reflection):{grpc_lines}{worker_lines}\n"
        f"  admin login   {email} / {password}\n"
        f"  traces        make traces   (make traces N=20, make traces TRACE=<id>)\n"
        f"  logs          {config.run_dir / 'logs'}/<process>.log\n"
        "  Ctrl-C stops everything."
    )
