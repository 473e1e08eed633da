from __future__ import annotations

import dataclasses
import socket
from pathlib import Path

import pytest

from devstack.services import SERVICES, present_services, service_by_key
from devstack.stack import StackConfig, required_ports, run_stack, service_env, worker_env

CONFIG = StackConfig(
    repo_root=Path("/repo"),
    postgres_admin_url="postgresql://postgres@127.0.0.1:5432/postgres",
    redis_url="redis://127.0.0.1:6379/0",
)


def test_service_env_points_the_service_at_its_own_database_and_the_sink() -> None:
    env = service_env(service_by_key("patient-record"), CONFIG, {"PATH": "/bin"})

    assert env["MEDSTATION_DATABASE_URL"] == (
        "postgresql+psycopg://medstation_patient:medstation_patient-local-dev"
        "@127.0.0.1:5432/medstation_patient"
    )
    assert env["MEDSTATION_GRPC_PORT"] == "50052"
    assert env["MEDSTATION_METRICS_PORT"] == "9102"
    assert env["MEDSTATION_USER_SERVICE_ADDR"] == "127.0.0.1:50051"
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://127.0.0.1:4317"
    assert env["OTEL_SERVICE_NAME"] == "patient-record"
    assert env["PATH"] == "/bin"


def test_services_that_call_others_learn_their_addresses() -> None:
    env = service_env(service_by_key("chat"), CONFIG, {})

    assert env["MEDSTATION_PATIENT_SERVICE_ADDR"] == "127.0.0.1:50052"
    assert env["MEDSTATION_USER_SERVICE_ADDR"] == "127.0.0.1:50051"


def test_a_worker_shares_its_service_database_but_not_its_ports_or_trace_name() -> None:
    summary = service_by_key("summary")
    (worker,) = summary.workers

    env = worker_env(summary, worker, CONFIG, {})

    assert (
        env["MEDSTATION_DATABASE_URL"]
        == service_env(summary, CONFIG, {})["MEDSTATION_DATABASE_URL"]
    )
    assert (env["MEDSTATION_GRPC_PORT"], env["MEDSTATION_METRICS_PORT"]) == ("50063", "9113")
    assert env["OTEL_SERVICE_NAME"] == "summary-worker"


def test_admin_credentials_from_the_environment_win() -> None:
    base = {"MEDSTATION_ADMIN_PASSWORD": "from-my-shell"}

    env = service_env(service_by_key("user"), CONFIG, base)

    assert env["MEDSTATION_ADMIN_PASSWORD"] == "from-my-shell"
    assert env["MEDSTATION_ADMIN_EMAIL"] == "admin@medstation.local"


def test_every_listening_port_is_checked() -> None:
    ports = required_ports([service_by_key("user")], CONFIG)

    assert ports == {
        "gateway": 8080,
        "envoy admin": 9901,
        "trace sink": 4317,
        "user gRPC": 50051,
        "user metrics": 9101,
    }


def test_present_services_are_those_with_a_pyproject(tmp_path: Path) -> None:
    (tmp_path / "services" / "summary").mkdir(parents=True)
    (tmp_path / "services" / "summary" / "pyproject.toml").touch()
    (tmp_path / "services" / "chat").mkdir()

    assert [s.key for s in present_services(tmp_path)] == ["summary"]
    ports = [p for s in SERVICES for p in (s.grpc_port, s.metrics_port)]
    ports += [p for s in SERVICES for w in s.workers for p in (w.grpc_port, w.metrics_port)]
    assert len(set(ports)) == len(ports) == 10


async def test_run_fails_fast_naming_a_taken_port(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "services" / "user").mkdir(parents=True)
    (tmp_path / "services" / "user" / "pyproject.toml").touch()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        taken = listener.getsockname()[1]
        config = dataclasses.replace(CONFIG, repo_root=tmp_path, gateway_port=taken)

        assert await run_stack(config) == 1

    output = capsys.readouterr().out
    assert f"port {taken} (gateway) is already in use" in output
    assert not (tmp_path / ".run" / "logs").exists()
