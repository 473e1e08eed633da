"""Schemathesis hooks for fuzzing MedStation: `SCHEMATHESIS_HOOKS=devstack.fuzz_hooks`.

- Authentication: signs in as the account in MEDSTATION_FUZZ_EMAIL / _PASSWORD through
  MEDSTATION_FUZZ_GATEWAY and signs in again every few minutes, so a long run never goes on
  with an expired access token (they live 15 minutes).
- Path parameters: each may take, instead of the generated value, one of the real ids that
  MEDSTATION_FUZZ_TARGETS (a JSON file: operation label -> parameter -> ids) lists for it.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Any

import httpx
import schemathesis
from hypothesis import strategies as st
from schemathesis.auths import AuthContext
from schemathesis.generation.case import Case
from schemathesis.hooks import HookContext

from devstack.fuzz import EMAIL_VARIABLE, GATEWAY_VARIABLE, PASSWORD_VARIABLE, TARGETS_VARIABLE

# Well inside the 15-minute access token lifetime.
REFRESH_SECONDS = 300


@schemathesis.auth(refresh_interval=REFRESH_SECONDS)
class BearerLogin:
    """An access token from POST /v1/auth/login, sent as `Authorization: Bearer`."""

    def get(self, case: Case[Any], context: AuthContext) -> str:
        body = {"email": os.environ[EMAIL_VARIABLE], "password": os.environ[PASSWORD_VARIABLE]}
        response = httpx.post(
            f"{os.environ[GATEWAY_VARIABLE]}/v1/auth/login", json=body, timeout=10
        )
        response.raise_for_status()
        return str(response.json()["access_token"])

    def set(self, case: Case[Any], data: str, context: AuthContext) -> None:
        case.headers["Authorization"] = f"Bearer {data}"


@functools.cache
def _targets() -> dict[str, dict[str, list[str]]]:
    path = os.environ.get(TARGETS_VARIABLE)
    if not path:
        return {}
    loaded: dict[str, dict[str, list[str]]] = json.loads(Path(path).read_text(encoding="utf-8"))
    return loaded


@schemathesis.hook
def flatmap_path_parameters(
    context: HookContext, path_parameters: dict[str, Any]
) -> st.SearchStrategy[dict[str, Any]]:
    """The generated values, with any of them possibly swapped for a real id."""
    label = context.operation.label if context.operation is not None else ""
    known = _targets().get(label, {})
    if not known or not isinstance(path_parameters, dict):
        return st.just(path_parameters)  # negative cases may generate no mapping at all
    choices = {
        name: st.one_of(st.just(value), st.sampled_from(known[name]))
        if known.get(name)
        else st.just(value)
        for name, value in path_parameters.items()
    }
    return st.fixed_dictionaries(choices)
