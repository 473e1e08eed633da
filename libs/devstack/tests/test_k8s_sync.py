"""The generated files under k8s/ match their sources: the one gateway template, the
descriptor set, the alert rules."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from devstack import gateway_config, k8s_sync
from devstack.k8s_sync import (
    ALERT_RULES,
    GATEWAY_CONFIG,
    GATEWAY_DESCRIPTOR,
    PROMETHEUS_RULE,
    stale_files,
    write_files,
)


def test_the_committed_files_are_up_to_date() -> None:
    stale = stale_files(gateway_config.repo_root())
    assert stale == [], f"run `python -m devstack.k8s_sync`: {stale} differ from their sources"


def test_the_gateway_config_is_the_k8s_render_of_the_template() -> None:
    root = gateway_config.repo_root()
    committed = (root / GATEWAY_CONFIG).read_text()
    assert committed.startswith("# Rendered from gateway/envoy.yaml.j2 (profile: k8s).")
    config = yaml.safe_load(committed)
    listener = config["static_resources"]["listeners"][0]["address"]["socket_address"]
    assert listener == {"address": "0.0.0.0", "port_value": 8080}
    assert "/etc/envoy/medstation_api.binpb" in committed
    assert (
        root / GATEWAY_DESCRIPTOR
    ).read_bytes() == gateway_config.default_descriptor_path().read_bytes()


def test_the_prometheus_rule_carries_the_rule_files_groups() -> None:
    root = gateway_config.repo_root()
    rules = yaml.safe_load((root / ALERT_RULES).read_text())
    rule = yaml.safe_load((root / PROMETHEUS_RULE).read_text())
    assert rule["kind"] == "PrometheusRule"
    assert rule["spec"]["groups"] == rules["groups"]


@pytest.fixture
def checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The sources and generated files in a scratch checkout, to change freely."""
    root = gateway_config.repo_root()
    for directory in ("gateway", "k8s"):
        shutil.copytree(root / directory, tmp_path / directory)
    monkeypatch.setenv("MEDSTATION_REPO_ROOT", str(tmp_path))
    return tmp_path


def test_a_template_change_makes_the_render_stale(checkout: Path) -> None:
    template = checkout / "gateway" / "envoy.yaml.j2"
    template.write_text(template.read_text() + "# a new last line\n")
    assert stale_files(checkout) == [GATEWAY_CONFIG]
    assert k8s_sync.main(["--check"]) == 1
    assert write_files(checkout) == [GATEWAY_CONFIG]
    assert (checkout / GATEWAY_CONFIG).read_text().endswith("# a new last line\n")
    assert k8s_sync.main(["--check"]) == 0


def test_a_new_descriptor_or_rule_makes_its_copy_stale(checkout: Path) -> None:
    (checkout / GATEWAY_DESCRIPTOR).write_bytes(b"old")
    rules = checkout / ALERT_RULES
    content = yaml.safe_load(rules.read_text())
    content["groups"][0]["rules"][0]["for"] = "7m"
    rules.write_text(yaml.safe_dump(content))
    assert sorted(stale_files(checkout)) == sorted([GATEWAY_DESCRIPTOR, PROMETHEUS_RULE])
    assert k8s_sync.main([]) == 0
    assert stale_files(checkout) == []
    assert "for: 7m" in (checkout / PROMETHEUS_RULE).read_text()
