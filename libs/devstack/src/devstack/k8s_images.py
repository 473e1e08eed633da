"""Will a service's image import everything it needs? Answered without building it.

An image installs libs/api, libs/platform, libs/llm and the service with exactly their
declared dependencies (pinned by requirements.txt as constraints), not everything the
development venv holds. So a module our code imports whose distribution no pyproject.toml
declares (directly or through a dependency) works in every test and fails in the image at
start. This walks the imports of the packages an image installs and checks each against
the dependency closure of their pyproject.toml files.
"""

from __future__ import annotations

import ast
import functools
import importlib.metadata
import importlib.util
import sys
import sysconfig
import tomllib
from collections.abc import Iterable
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

# What every image installs besides the service itself (see services/*/Dockerfile).
SHARED_LIBS = ("libs/api", "libs/platform", "libs/llm")


def image_package_dirs(service_directory: str) -> tuple[str, ...]:
    return (*SHARED_LIBS, service_directory)


def undeclared_imports(repo_root: Path, service_directory: str) -> dict[str, str]:
    """Imported module -> its distribution, for each one the image would not install."""
    directories = [repo_root / d for d in image_package_dirs(service_directory)]
    ours = _our_projects(repo_root)
    roots = [_project_name(d / "pyproject.toml") for d in directories]
    installed = _closure(roots, ours)
    missing: dict[str, str] = {}
    for directory in directories:
        for module, maybe_attribute in sorted(_imported_modules(_sources(directory))):
            top = module.partition(".")[0]
            if top in sys.stdlib_module_names or top in _OUR_TOP_LEVEL:
                continue
            distribution = _distribution_of(module)
            if distribution == NOT_INSTALLED and maybe_attribute:
                continue  # `from package import name`: a name, not a submodule
            if distribution is not None and distribution not in installed:
                missing[module] = distribution
    return missing


NOT_INSTALLED = "(not installed here either)"


# Our own top-level packages: never third-party, whichever image.
_OUR_TOP_LEVEL = (
    "medstation",
    "buf",
    "medstation_platform",
    "medstation_llm",
    "user",
    "patient_record",
    "summary",
    "chat",
)


def _sources(directory: Path) -> list[Path]:
    """The Python files a wheel of this project carries (no tests)."""
    base = directory / "src" if (directory / "src").is_dir() else directory
    return [p for p in base.rglob("*.py") if "tests" not in p.relative_to(directory).parts]


def _imported_modules(paths: Iterable[Path]) -> set[tuple[str, bool]]:
    """(module, whether it may be a plain name) for every absolute import.

    `from a.b import c` imports a.b, and c may be a submodule (a namespace package's part,
    say `from opentelemetry import trace`) or just a name in a.b.
    """
    modules: set[tuple[str, bool]] = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                modules.update((alias.name, False) for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add((node.module, False))
                modules.update((f"{node.module}.{alias.name}", True) for alias in node.names)
    return modules


def _project_name(pyproject: Path) -> str:
    with pyproject.open("rb") as file:
        return str(canonicalize_name(tomllib.load(file)["project"]["name"]))


def _our_projects(repo_root: Path) -> dict[str, list[str]]:
    """Our projects' names -> their declared dependencies, read from pyproject.toml."""
    projects: dict[str, list[str]] = {}
    for pyproject in [
        *repo_root.glob("libs/*/pyproject.toml"),
        *repo_root.glob("services/*/pyproject.toml"),
    ]:
        with pyproject.open("rb") as file:
            project = tomllib.load(file)["project"]
        projects[str(canonicalize_name(project["name"]))] = list(project.get("dependencies", []))
    return projects


def _closure(roots: Iterable[str], ours: dict[str, list[str]]) -> set[str]:
    """Every distribution pip installs for `roots` (extras and markers honoured)."""
    seen: set[str] = set()
    pending: list[tuple[str, frozenset[str]]] = [(root, frozenset()) for root in roots]
    visited: set[tuple[str, frozenset[str]]] = set()
    while pending:
        name, extras = pending.pop()
        if (name, extras) in visited:
            continue
        visited.add((name, extras))
        seen.add(name)
        for text in ours.get(name) or _installed_requirements(name):
            requirement = Requirement(text)
            if requirement.marker is not None and not any(
                requirement.marker.evaluate({"extra": extra}) for extra in (extras or {""})
            ):
                continue
            pending.append(
                (str(canonicalize_name(requirement.name)), frozenset(requirement.extras))
            )
    return seen


def _installed_requirements(name: str) -> list[str]:
    try:
        return importlib.metadata.requires(name) or []
    except importlib.metadata.PackageNotFoundError:
        return []


@functools.cache
def _file_owners() -> dict[str, str]:
    """Installed file (relative to site-packages) -> the distribution that installed it."""
    owners: dict[str, str] = {}
    for distribution in importlib.metadata.distributions():
        name = str(canonicalize_name(distribution.metadata["Name"]))
        for file in distribution.files or []:
            owners[Path(file).as_posix()] = name
    return owners


def _distribution_of(module: str) -> str | None:
    """The installed distribution providing `module`; None for a namespace package or
    our own editable code; NOT_INSTALLED when nothing here provides it."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        return NOT_INSTALLED
    if spec.origin in (None, "built-in", "frozen"):
        return None  # a namespace package: its parts are asked about by their full names
    origin = Path(spec.origin)
    for site in {Path(sysconfig.get_paths()[key]) for key in ("purelib", "platlib")}:
        if origin.is_relative_to(site):
            return _file_owners().get(origin.relative_to(site).as_posix())
    return None  # not from site-packages: an editable install of ours
