"""What a failed gRPC call tells a client, decoded for assertions in tests."""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from typing import cast

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

_DETAILS_KEY = "grpc-status-details-bin"


@dataclass(frozen=True)
class Failure:
    """The status code, the ErrorInfo reason and domain, and the BadRequest field names."""

    code: grpc.StatusCode
    reason: str
    domain: str
    fields: list[str]


async def failure(call: Awaitable[object]) -> Failure:
    """Await a call that must fail, and decode its status details."""
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call
    return failure_of(raised.value)


def failure_of(error: grpc.aio.AioRpcError) -> Failure:
    status = _rich_status(error)
    info = error_details_pb2.ErrorInfo()
    bad_request = error_details_pb2.BadRequest()
    for detail in status.details:
        if detail.TypeName() == "google.rpc.ErrorInfo":
            detail.Unpack(info)
        elif detail.TypeName() == "google.rpc.BadRequest":
            detail.Unpack(bad_request)
    fields = [violation.field for violation in bad_request.field_violations]
    return Failure(error.code(), info.reason, info.domain, fields)


def _rich_status(error: grpc.aio.AioRpcError) -> status_pb2.Status:
    # grpc-stubs types these trailers like the sync API's tuples; they are aio Metadata.
    trailers = cast(grpc.aio.Metadata, error.trailing_metadata())
    [packed] = trailers.get_all(_DETAILS_KEY)
    if not isinstance(packed, bytes):
        raise AssertionError(f"{_DETAILS_KEY} is not binary: {packed!r}")
    status = status_pb2.Status.FromString(packed)
    # The rich status must agree with the plain one every gRPC client sees.
    if (status.code, status.message) != (error.code().value[0], error.details()):
        raise AssertionError(f"rich status {status} disagrees with {error.code()}")
    return status
