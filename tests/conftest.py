"""Fixtures for end-to-end tests through the real gateway (see stack_harness.py)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from stack_harness import Accounts, Stack, running_stack


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("stack")) as running:
        yield running


@pytest.fixture
def api(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.gateway_url, timeout=10) as client:
        yield client


@pytest.fixture
def accounts(api: httpx.Client, stack: Stack) -> Accounts:
    return Accounts(api, stack)
