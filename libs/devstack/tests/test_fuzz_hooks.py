"""The schemathesis hooks: real ids where the targets file lists them, generated ones too."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from hypothesis import find, settings
from schemathesis.hooks import HookContext

from devstack import fuzz, fuzz_hooks

REAL = "4f2c8c1e-1111-4a4a-9b9b-000000000001"
# No example database: it would be written into the working directory.
QUIET = settings(database=None)


@pytest.fixture
def targets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    path = tmp_path / "targets.json"
    path.write_text(json.dumps({"GET /v1/patients/{id}": {"id": [REAL]}}), encoding="utf-8")
    monkeypatch.setenv(fuzz.TARGETS_VARIABLE, str(path))
    fuzz_hooks._targets.cache_clear()
    yield
    fuzz_hooks._targets.cache_clear()


def context(label: str) -> HookContext:
    return HookContext(operation=cast("Any", SimpleNamespace(label=label)))


@pytest.mark.usefixtures("targets")
def test_a_listed_parameter_may_take_a_real_id_or_keep_its_own() -> None:
    strategy = fuzz_hooks.flatmap_path_parameters(
        context("GET /v1/patients/{id}"), {"id": "generated"}
    )

    assert find(strategy, lambda drawn: drawn["id"] == REAL, settings=QUIET) == {"id": REAL}
    assert find(strategy, lambda drawn: drawn["id"] == "generated", settings=QUIET) == {
        "id": "generated"
    }


@pytest.mark.usefixtures("targets")
def test_other_operations_and_odd_values_are_left_alone() -> None:
    other = fuzz_hooks.flatmap_path_parameters(context("GET /v1/chats/{id}"), {"id": "own"})
    odd = fuzz_hooks.flatmap_path_parameters(context("GET /v1/patients/{id}"), cast("Any", None))

    assert find(other, lambda drawn: True, settings=QUIET) == {"id": "own"}
    assert find(odd, lambda drawn: True, settings=QUIET) is None
