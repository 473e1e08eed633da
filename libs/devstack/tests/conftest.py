"""Fixtures shared by the gateway tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from devstack import gateway_config


@pytest.fixture(scope="session")
def descriptor() -> Path:
    path = gateway_config.default_descriptor_path()
    if not path.is_file():
        pytest.fail(f"{path} is missing: run `make proto`")
    return path
