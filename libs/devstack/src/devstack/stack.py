"""The whole local system, as `make run` starts it: infrastructure, services, gateway.

Order: ports checked, PostgreSQL and Redis ensured, trace sink; then per service its
database and role, its migrations, the service itself; Envoy last. Each step waits for
a health answer before the next. Ctrl-C or SIGTERM stops everything and exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from devstack import envoy, gateway_config
from devstack.health import wait_for_grpc_health_async, wait_for_http_ok
from devstack.ports import ensure_ports_free
from devstack.postgres import database_url, ensure_database, ensure_postgres
from devstack.redis import ensure_redis
from devstack.services import ServiceEntry, present_services, service_by_key
from devstack.supervisor import ProcessSpec, Supervisor

LOCAL_HOST = "127.0.0.1"
DEFAULT_ADMIN_EMAIL = "admin@medstation.local"
DEFAULT_ADMIN_PASSWORD = "change-me-admin-password"  # noqa: S105  # documented local default
USER_SERVICE_KEY = "user"

_GiveUp = Callable[[], str | None]


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

    @property
    def run_dir(self) -> Path:
        return self.repo_root / ".run"

    @property
    def otlp_endpoint(self) -> str:
        return f"http://{LOCAL_HOST}:{self.sink_port}"


def local_database_password(role: str) -> str:
    """Stable across runs, so a second `make run` reuses the databases; loopback only."""
    return f"{role}-local-dev"


def service_env(
    service: ServiceEntry, config: StackConfig, base: Mapping[str, str]
) -> dict[str, str]:
    """The environment a service process (and its migration) runs with."""
    password = local_database_password(service.role)
    env = dict(base)
    env.setdefault("MEDSTATION_ADMIN_EMAIL", DEFAULT_ADMIN_EMAIL)
    env.setdefault("MEDSTATION_ADMIN_PASSWORD", DEFAULT_ADMIN_PASSWORD)
    env.update(
        PYTHONUNBUFFERED="1",
        MEDSTATION_GRPC_HOST=LOCAL_HOST,
        MEDSTATION_GRPC_PORT=str(service.grpc_port),
        MEDSTATION_METRICS_PORT=str(service.metrics_port),
        MEDSTATION_DATABASE_URL=database_url(
            config.postgres_admin_url, service.database, service.role, password
        ),
        MEDSTATION_REDIS_URL=config.redis_url,
        MEDSTATION_USER_SERVICE_ADDR=f"{LOCAL_HOST}:{service_by_key(USER_SERVICE_KEY).grpc_port}",
        OTEL_EXPORTER_OTLP_ENDPOINT=config.otlp_endpoint,
        OTEL_SERVICE_NAME=service.key,
    )
    return env


def required_ports(services: list[ServiceEntry], config: StackConfig) -> dict[str, int]:
    ports = {
        "gateway": config.gateway_port,
        "envoy admin": config.envoy_admin_port,
        "trace sink": config.sink_port,
    }
    for service in services:
        ports[f"{service.key} gRPC"] = service.grpc_port
        ports[f"{service.key} metrics"] = service.metrics_port
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
    env = service_env(service, config, os.environ)
    migrate = ProcessSpec(
        f"{service.key}-migrate", (config.python, "-m", service.package, "migrate"), env
    )
    await supervisor.run_to_completion(migrate)
    address = f"{LOCAL_HOST}:{service.grpc_port}"

    async def ready(give_up: _GiveUp) -> None:
        await wait_for_grpc_health_async(
            address, service.proto_service, config.ready_timeout, give_up
        )

    spec = ProcessSpec(service.key, (config.python, "-m", service.package), env, ready=ready)
    await supervisor.start(spec)


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
        options, listen_port=config.gateway_port, admin_port=config.envoy_admin_port
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


def ready_banner(services: list[ServiceEntry], config: StackConfig) -> str:
    grpc_lines = "".join(
        f"\n    .venv/bin/grpcurl -plaintext {LOCAL_HOST}:{s.grpc_port} list   # {s.key}"
        for s in services
    )
    email = os.environ.get("MEDSTATION_ADMIN_EMAIL", DEFAULT_ADMIN_EMAIL)
    password = os.environ.get("MEDSTATION_ADMIN_PASSWORD", DEFAULT_ADMIN_PASSWORD)
    return (
        "MedStation is ready.\n"
        f"  REST gateway  http://{LOCAL_HOST}:{config.gateway_port}\n"
        f"    curl -s localhost:{config.gateway_port}/healthz\n"
        f"  gRPC (direct, reflection):{grpc_lines}\n"
        f"  admin login   {email} / {password}\n"
        f"  traces        make traces   (make traces N=20, make traces TRACE=<id>)\n"
        f"  logs          {config.run_dir / 'logs'}/<process>.log\n"
        "  Ctrl-C stops everything."
    )
