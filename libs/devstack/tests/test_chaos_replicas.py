"""Several replicas of a service: the dev runner's ports and addresses, Envoy's endpoints."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import cast

import pytest
import yaml

from devstack import gateway_config, stack
from devstack.gateway_config import GatewayConfigError, GatewayOptions, Upstream
from devstack.services import service_by_key
from devstack.stack import (
    StackConfig,
    parse_replicas,
    replicas_from_env,
    required_ports,
    service_env,
    with_replicas,
    worker_env,
)
from devstack.supervisor import ProcessSpec, Supervisor

PATIENT = "medstation.patient.v1.PatientRecordService"


def _config(replicas: dict[str, int]) -> StackConfig:
    return StackConfig(
        repo_root=Path("/repo"),
        postgres_admin_url="postgresql://postgres@127.0.0.1:5432/postgres",
        redis_url="redis://127.0.0.1:6379/0",
        replicas=replicas,
    )


def test_replica_counts_are_one_number_for_all_or_one_per_key() -> None:
    assert parse_replicas("") == {}
    assert parse_replicas("2") == {"*": 2}
    assert parse_replicas("patient-record=2, summary-worker=3") == {
        "patient-record": 2,
        "summary-worker": 3,
    }
    assert replicas_from_env({"MEDSTATION_REPLICAS": "2"}) == {"*": 2}
    assert _config({"*": 2}).replica_count("chat") == 2
    assert _config({"chat": 3}).replica_count("chat") == 3
    assert _config({"chat": 3}).replica_count("user") == 1


@pytest.mark.parametrize("text", ["0", "10", "two", "chat", "chat=", "=2", "chat=2,user"])
def test_nonsense_replica_counts_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="MEDSTATION_REPLICAS"):
        parse_replicas(text)


def test_each_replica_listens_on_its_own_ports() -> None:
    config = _config({"patient-record": 2})
    patient = service_by_key("patient-record")

    first, second = (service_env(patient, config, {}, replica) for replica in (0, 1))

    assert (first["MEDSTATION_GRPC_PORT"], first["MEDSTATION_METRICS_PORT"]) == ("50052", "9102")
    assert (second["MEDSTATION_GRPC_PORT"], second["MEDSTATION_METRICS_PORT"]) == (
        "50152",
        "9202",
    )
    assert first["MEDSTATION_DATABASE_URL"] == second["MEDSTATION_DATABASE_URL"]
    ports = required_ports([patient], config)
    assert ports["patient-record gRPC"] == 50052
    assert ports["patient-record-2 gRPC"] == 50152
    assert ports["patient-record-2 metrics"] == 9202


def test_callers_balance_over_every_replica_and_a_single_one_keeps_a_plain_address() -> None:
    config = _config({"patient-record": 2})

    env = service_env(service_by_key("chat"), config, {})

    assert env["MEDSTATION_PATIENT_SERVICE_ADDR"] == "ipv4:127.0.0.1:50052,127.0.0.1:50152"
    assert env["MEDSTATION_USER_SERVICE_ADDR"] == "127.0.0.1:50051"


def test_worker_replicas_get_their_own_ports() -> None:
    summary = service_by_key("summary")
    (worker,) = summary.workers

    env = worker_env(summary, worker, _config({"summary-worker": 2}), {}, replica=1)

    assert (env["MEDSTATION_GRPC_PORT"], env["MEDSTATION_METRICS_PORT"]) == ("50163", "9213")


def _rendered_endpoints(options: GatewayOptions) -> dict[str, list[tuple[str, int]]]:
    config = yaml.safe_load(gateway_config.render_gateway_config(options))
    endpoints: dict[str, list[tuple[str, int]]] = {}
    for cluster in config["static_resources"]["clusters"]:
        for group in cluster["load_assignment"]["endpoints"]:
            for entry in group["lb_endpoints"]:
                address = entry["endpoint"]["address"]["socket_address"]
                endpoints.setdefault(cluster["name"], []).append(
                    (address["address"], address["port_value"])
                )
    return endpoints


def test_the_gateway_balances_over_every_replica_of_a_service() -> None:
    descriptor = gateway_config.default_descriptor_path()
    services = [service_by_key("user"), service_by_key("patient-record")]
    options = gateway_config.profile_options("local", descriptor, [s.key for s in services], env={})

    upstreams = with_replicas(options.upstreams, services, _config({"patient-record": 2}))
    endpoints = _rendered_endpoints(GatewayOptions(upstreams, str(descriptor)))

    assert endpoints["patient-record"] == [("127.0.0.1", 50052), ("127.0.0.1", 50152)]
    assert endpoints["user"] == [("127.0.0.1", 50051)]


def test_an_endpoint_listed_twice_is_refused() -> None:
    upstream = Upstream(
        "patient-record", PATIENT, "127.0.0.1", 50052, extra_endpoints=(("127.0.0.1", 50052),)
    )
    with pytest.raises(GatewayConfigError, match="twice"):
        gateway_config.render_gateway_config(GatewayOptions((upstream,), "/api.binpb"))


class RecordingSupervisor:
    """Stands in for the Supervisor: records what would be run, runs nothing."""

    def __init__(self) -> None:
        self.started: list[ProcessSpec] = []
        self.completed: list[ProcessSpec] = []

    async def run_to_completion(self, spec: ProcessSpec) -> None:
        self.completed.append(spec)

    async def start(self, spec: ProcessSpec) -> None:
        self.started.append(spec)


async def test_the_dev_runner_migrates_once_and_starts_every_replica(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(stack, "ensure_database", lambda *args: None)
    supervisor = RecordingSupervisor()
    config = _config({"*": 2})

    await stack._start_service(cast("Supervisor", supervisor), service_by_key("summary"), config)

    assert [spec.name for spec in supervisor.completed] == ["summary-migrate"]
    started = {spec.name: spec.env["MEDSTATION_GRPC_PORT"] for spec in supervisor.started}
    assert started == {
        "summary": "50053",
        "summary-2": "50153",
        "summary-worker": "50063",
        "summary-worker-2": "50163",
    }


async def test_the_dev_runners_gateway_config_with_replicas_is_valid_for_envoy(
    tmp_path: Path,
) -> None:
    # The checkout's descriptor, the run directory under tmp_path.
    config = dataclasses.replace(_config({"patient-record": 2}), repo_root=tmp_path)
    descriptor = tmp_path / gateway_config.DESCRIPTOR_RELATIVE_PATH
    descriptor.parent.mkdir(parents=True)
    descriptor.write_bytes(gateway_config.default_descriptor_path().read_bytes())
    config.run_dir.mkdir()
    services = [service_by_key("user"), service_by_key("patient-record")]

    spec = await stack._envoy_spec(services, config)  # validated by `envoy --mode validate`

    assert spec.name == "envoy"
    rendered = yaml.safe_load((tmp_path / ".run" / "envoy.yaml").read_text())
    (patient,) = [
        c for c in rendered["static_resources"]["clusters"] if c["name"] == "patient-record"
    ]
    ports = [
        e["endpoint"]["address"]["socket_address"]["port_value"]
        for e in patient["load_assignment"]["endpoints"][0]["lb_endpoints"]
    ]
    assert ports == [50052, 50152]
