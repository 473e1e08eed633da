"""The one table that maps domain errors to gRPC status codes with rich details (AIP-193)."""

from __future__ import annotations

import collections

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from medstation_platform import errors

# Checked in order: the first base class that matches wins, so subclasses of
# InvalidArgument (e.g. InvalidPageToken) still map to INVALID_ARGUMENT.
_STATUS_BY_ERROR: tuple[tuple[type[errors.DomainError], grpc.StatusCode], ...] = (
    (errors.InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.FailedPrecondition, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.Unauthenticated, grpc.StatusCode.UNAUTHENTICATED),
    (errors.PermissionDenied, grpc.StatusCode.PERMISSION_DENIED),
    (errors.NotFound, grpc.StatusCode.NOT_FOUND),
    (errors.AlreadyExists, grpc.StatusCode.ALREADY_EXISTS),
    (errors.Aborted, grpc.StatusCode.ABORTED),
    (errors.ResourceExhausted, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (errors.Unavailable, grpc.StatusCode.UNAVAILABLE),
    (errors.DeadlineExceeded, grpc.StatusCode.DEADLINE_EXCEEDED),
)


def status_code_for(error: errors.DomainError) -> grpc.StatusCode:
    for error_class, code in _STATUS_BY_ERROR:
        if isinstance(error, error_class):
            return code
    return grpc.StatusCode.UNKNOWN


def _pack(message: error_details_pb2.ErrorInfo | error_details_pb2.BadRequest) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def to_grpc_status(error: errors.DomainError, *, domain: str) -> grpc.Status:
    """A `grpc.Status` whose trailing metadata carries a `google.rpc.Status` with details."""
    code = status_code_for(error)
    details = [
        _pack(
            error_details_pb2.ErrorInfo(reason=error.reason, domain=domain, metadata=error.metadata)
        )
    ]
    if error.violations:
        bad_request = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(
                    field=violation.field, description=violation.description
                )
                for violation in error.violations
            ]
        )
        details.append(_pack(bad_request))
    proto = status_pb2.Status(code=code.value[0], message=error.message, details=details)
    status = rpc_status.to_status(proto)
    if retry_after := error.metadata.get(errors.RETRY_AFTER_METADATA):
        # Envoy passes trailing metadata on as headers: REST clients get Retry-After too.
        metadata = (*status.trailing_metadata, ("retry-after", retry_after))
        return _Status(status.code, status.details, metadata)
    return status


class _Status(
    collections.namedtuple("_Status", ("code", "details", "trailing_metadata")), grpc.Status
):
    """A status with extra trailing metadata (grpc.Status is only an interface)."""


def internal_status(*, domain: str) -> grpc.Status:
    """What a client sees for a bug: nothing about the bug (no SQL, no stack, no host)."""
    info = error_details_pb2.ErrorInfo(reason="INTERNAL", domain=domain)
    proto = status_pb2.Status(
        code=code_pb2.INTERNAL, message="internal error", details=[_pack(info)]
    )
    return rpc_status.to_status(proto)
