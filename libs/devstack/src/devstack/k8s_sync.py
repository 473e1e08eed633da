"""The generated files under k8s/, kept in step with their sources.

- k8s/base/gateway/envoy.yaml: gateway/envoy.yaml.j2 rendered with `--profile k8s` (the
  same template and options as `python -m devstack.gateway_config --profile k8s`);
- k8s/base/gateway/medstation_api.binpb: a copy of the transcoder's descriptor set
  (kustomize reads files only from inside the kustomization's directory);
- k8s/components/prometheus-operator/prometheus-rule.yaml: the alert rules of
  k8s/base/observability/alerts.yaml wrapped in a PrometheusRule.

`python -m devstack.k8s_sync` writes them; `--check` writes nothing and exits 1 naming
the stale ones (the tests do the same).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import yaml

from devstack import gateway_config

K8S_DIRECTORY = Path("k8s")
GATEWAY_CONFIG = K8S_DIRECTORY / "base" / "gateway" / "envoy.yaml"
GATEWAY_DESCRIPTOR = K8S_DIRECTORY / "base" / "gateway" / "medstation_api.binpb"
GATEWAY_OPENAPI = K8S_DIRECTORY / "base" / "gateway" / "openapi.json"
ALERT_RULES = K8S_DIRECTORY / "base" / "observability" / "alerts.yaml"
PROMETHEUS_RULE = K8S_DIRECTORY / "components" / "prometheus-operator" / "prometheus-rule.yaml"

_RULE_HEADER = (
    "# Generated from k8s/base/observability/alerts.yaml by `python -m devstack.k8s_sync`.\n"
    "# Do not edit: change alerts.yaml and run it again (a test fails when they differ).\n"
)


def expected_files(repo_root: Path) -> dict[Path, bytes]:
    """Each generated file (relative to the repository) and the bytes it must hold."""
    descriptor = repo_root / gateway_config.DESCRIPTOR_RELATIVE_PATH
    options = gateway_config.profile_options("k8s", descriptor)
    return {
        GATEWAY_CONFIG: gateway_config.render_gateway_config(options).encode(),
        GATEWAY_DESCRIPTOR: descriptor.read_bytes(),
        GATEWAY_OPENAPI: (repo_root / gateway_config.OPENAPI_RELATIVE_PATH).read_bytes(),
        PROMETHEUS_RULE: prometheus_rule_text(repo_root / ALERT_RULES).encode(),
    }


def prometheus_rule_text(alert_rules: Path) -> str:
    """The PrometheusRule carrying exactly the groups of a Prometheus rule file."""
    groups = yaml.safe_load(alert_rules.read_text(encoding="utf-8"))["groups"]
    rule = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "medstation", "labels": {"app.kubernetes.io/name": "medstation"}},
        "spec": {"groups": groups},
    }
    return _RULE_HEADER + yaml.dump(
        rule, Dumper=_BlockStyleDumper, sort_keys=False, width=4096, allow_unicode=True
    )


class _BlockStyleDumper(yaml.SafeDumper):
    """Multi-line strings (PromQL expressions) as `|` blocks, as a person writes them."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockStyleDumper.add_representer(str, _represent_str)


def stale_files(repo_root: Path) -> list[Path]:
    """The generated files that are missing or differ from what their sources give."""
    return [
        relative
        for relative, content in expected_files(repo_root).items()
        if not (repo_root / relative).is_file() or (repo_root / relative).read_bytes() != content
    ]


def write_files(repo_root: Path) -> list[Path]:
    """Write the stale files; returns them."""
    stale = stale_files(repo_root)
    expected = expected_files(repo_root)
    for relative in stale:
        target = repo_root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(expected[relative])
    return stale


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devstack.k8s_sync",
        description="Regenerate the files under k8s/ that come from other sources.",
    )
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if any file is stale"
    )
    args = parser.parse_args(argv)
    root = gateway_config.repo_root()
    try:
        changed = stale_files(root) if args.check else write_files(root)
    except (gateway_config.GatewayConfigError, OSError, KeyError, yaml.YAMLError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    verb = "stale" if args.check else "wrote"
    for relative in changed:
        print(f"{verb}: {relative}")
    if args.check and changed:
        print("run `python -m devstack.k8s_sync` and commit the result", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
