"""The service images, read from their Dockerfiles (no Docker engine here to build them)."""

from __future__ import annotations

import re
from pathlib import Path

import pathspec
import pytest

from devstack import gateway_config
from devstack.k8s_images import SHARED_LIBS, undeclared_imports
from devstack.services import SERVICES, ServiceEntry

ROOT = gateway_config.repo_root()


def _instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    pairs = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            pairs.append((word.upper(), rest.strip()))
    return pairs


def _stages(dockerfile: Path) -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for instruction in _instructions(dockerfile):
        if instruction[0] == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(instruction)
    return stages


@pytest.fixture(params=SERVICES, ids=[s.key for s in SERVICES])
def service(request: pytest.FixtureRequest) -> ServiceEntry:
    entry: ServiceEntry = request.param
    return entry


def test_every_service_has_a_multi_stage_dockerfile(service: ServiceEntry) -> None:
    dockerfile = ROOT / service.directory / "Dockerfile"
    stages = _stages(dockerfile)
    assert len(stages) == 2, "a builder stage and a runtime stage"
    arguments = dict(_instructions(dockerfile)).get("ARG", "")
    base = arguments.partition("=")[2]
    assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-bookworm", base), "an exact Python tag"
    assert stages[0][0][1] == "${PYTHON_IMAGE} AS builder"
    assert stages[1][0][1] == "${PYTHON_IMAGE}", "the venv needs the builder's interpreter"


def test_the_builder_installs_pinned_wheels_of_our_packages(service: ServiceEntry) -> None:
    builder = [
        f"{word} {rest}" for word, rest in _stages(ROOT / service.directory / "Dockerfile")[0]
    ]
    wheel_build = next(line for line in builder if "pip wheel" in line)
    for directory in (*SHARED_LIBS, service.directory):
        assert f"COPY {directory} {directory}" in builder
        assert directory in wheel_build.split()
    install = next(line for line in builder if "--python /opt/venv/bin/python install" in line)
    assert "/wheels/*.whl" in install
    builder_text = " ".join(builder)
    assert "--constraint requirements.txt" in install, "exactly the pinned versions"
    assert "--only-binary=:all:" in install, "no compiler in any stage"
    assert "setuptools==" in builder_text, "a pinned build backend"


def test_the_runtime_stage_is_minimal_unprivileged_and_serves(service: ServiceEntry) -> None:
    runtime = _stages(ROOT / service.directory / "Dockerfile")[1]
    words = [word for word, _ in runtime]
    text = "\n".join(f"{w} {r}" for w, r in runtime)
    assert "COPY --from=builder /opt/venv /opt/venv" in text, "only the venv is carried over"
    assert not re.search(r"apt-get|gcc|build-essential|pip install", text)
    user = dict(runtime)["USER"]
    assert re.fullmatch(r"[1-9]\d*:[1-9]\d*", user), "a numeric, non-root UID:GID"
    assert "MEDSTATION_GRPC_HOST=0.0.0.0" in text
    assert f"MEDSTATION_GRPC_PORT={service.grpc_port}" in text
    exposed = {int(p) for p in dict(runtime)["EXPOSE"].split()}
    assert {service.grpc_port, service.metrics_port} <= exposed
    assert words[-1] == "CMD"
    assert runtime[-1][1] == f'["python", "-m", "{service.package}"]', "exec form"


def test_the_summary_image_also_runs_its_worker() -> None:
    summary = next(s for s in SERVICES if s.key == "summary")
    runtime = dict(_stages(ROOT / summary.directory / "Dockerfile")[1])
    worker = summary.workers[0]
    assert {worker.grpc_port, worker.metrics_port} <= {int(p) for p in runtime["EXPOSE"].split()}


def test_the_dockerignore_keeps_sources_and_drops_the_rest() -> None:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    ignored = pathspec.PathSpec.from_lines("gitignore", lines)
    needed = [
        "requirements.txt",
        "libs/api/pyproject.toml",
        "libs/api/medstation/user/v1/user_service_pb2.py",
        "libs/api/buf/validate/validate_pb2.py",
        "libs/platform/src/medstation_platform/settings.py",
        "libs/llm/pyproject.toml",
        *(f"{s.directory}/src/{s.package}/__main__.py" for s in SERVICES),
        *(f"{s.directory}/src/{s.package}/migrations/env.py" for s in SERVICES),
    ]
    assert [path for path in needed if ignored.match_file(path)] == []
    dropped = [
        ".venv/bin/python",
        ".git/HEAD",
        ".run/logs/user.log",
        "services/user/tests/unit/test_x.py",
        "libs/platform/tests/test_x.py",
        "tests/conftest.py",
        "libs/platform/src/medstation_platform/__pycache__/x.cpython-311.pyc",
        "libs/api/medstation_api.egg-info/PKG-INFO",
        "k8s/base/kustomization.yaml",
        ".mypy_cache/x",
    ]
    assert [path for path in dropped if not ignored.match_file(path)] == []


def test_each_image_installs_every_module_its_code_imports(service: ServiceEntry) -> None:
    # The image gets only the declared dependencies: an import that works here through the
    # development venv would fail when the container starts.
    missing = undeclared_imports(ROOT, service.directory)
    assert missing == {}, (
        "declare these distributions in the importing package's pyproject.toml "
        f"(and pin them in requirements.txt): {missing}"
    )


def _project(directory: Path, name: str, dependencies: list[str], source: str) -> None:
    (directory / "src" / name.replace("-", "_")).mkdir(parents=True)
    (directory / "pyproject.toml").write_text(
        f'[project]\nname = "{name}"\ndependencies = {dependencies!r}\n'.replace("'", '"')
    )
    (directory / "src" / name.replace("-", "_") / "__init__.py").write_text(source)


def test_an_undeclared_import_is_found(tmp_path: Path) -> None:
    _project(tmp_path / "libs" / "api", "medstation-api", [], "")
    _project(tmp_path / "libs" / "platform", "medstation-platform", ["pyyaml"], "import yaml\n")
    _project(tmp_path / "libs" / "llm", "medstation-llm", [], "import jinja2\n")
    _project(
        tmp_path / "services" / "x",
        "medstation-x",
        ["medstation-platform", "psycopg[binary]"],
        # Declared, declared through an extra, undeclared (a namespace package's part),
        # standard library, and a name that is no module.
        "import yaml\nimport psycopg_binary\nfrom opentelemetry import trace\n"
        "import json\nfrom yaml import safe_load\n",
    )
    assert undeclared_imports(tmp_path, "services/x") == {
        "jinja2": "jinja2",
        "opentelemetry.trace": "opentelemetry-api",
    }
