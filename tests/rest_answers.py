"""Reading the gateway's REST answers in tests: the body of a success, and what an error
says (its ErrorInfo and the fields its BadRequest names), as API.md defines them."""

from __future__ import annotations

from typing import Any

import httpx


def ok(response: httpx.Response) -> dict[str, Any]:
    """The JSON body of a 200, failing the test with the body of anything else."""
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def error_info(response: httpx.Response) -> dict[str, Any]:
    """The google.rpc.ErrorInfo detail of an error answer; {} when it has none."""
    for detail in response.json().get("details", []):
        if detail.get("@type", "").endswith("google.rpc.ErrorInfo"):
            found: dict[str, Any] = detail
            return found
    return {}


def reason(response: httpx.Response) -> str:
    """The stable machine-readable reason of an error answer, "" when it has none."""
    return str(error_info(response).get("reason", ""))


def violations(response: httpx.Response) -> set[str]:
    """The fields a google.rpc.BadRequest detail names."""
    return {
        violation["field"]
        for detail in response.json().get("details", [])
        if detail.get("@type", "").endswith("google.rpc.BadRequest")
        for violation in detail["field_violations"]
    }
