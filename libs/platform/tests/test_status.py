import grpc
from google.rpc import error_details_pb2, status_pb2

from medstation_platform import errors
from medstation_platform.rpc.status import internal_status, to_grpc_status


class PatientNotFound(errors.NotFound):
    reason = "PATIENT_NOT_FOUND"


def _decode(status: grpc.Status) -> status_pb2.Status:
    details = dict(status.trailing_metadata)["grpc-status-details-bin"]
    assert isinstance(details, bytes)
    return status_pb2.Status.FromString(details)


def test_domain_error_maps_to_its_code_with_error_info() -> None:
    status = to_grpc_status(PatientNotFound(), domain="medstation.patient")
    assert status.code == grpc.StatusCode.NOT_FOUND
    info = error_details_pb2.ErrorInfo()
    assert _decode(status).details[0].Unpack(info)
    assert (info.reason, info.domain) == ("PATIENT_NOT_FOUND", "medstation.patient")


def test_field_violations_become_bad_request_details() -> None:
    error = errors.InvalidArgument.for_field("email", "must be a valid email address")
    status = to_grpc_status(error, domain="medstation.user")
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT
    bad_request = error_details_pb2.BadRequest()
    assert _decode(status).details[1].Unpack(bad_request)
    assert [(v.field, v.description) for v in bad_request.field_violations] == [
        ("email", "must be a valid email address")
    ]


def test_subclasses_keep_their_category() -> None:
    status = to_grpc_status(errors.InvalidPageToken(), domain="d")
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT


def test_internal_status_reveals_nothing() -> None:
    status = internal_status(domain="medstation.user")
    assert status.code == grpc.StatusCode.INTERNAL
    assert status.details == "internal error"


def test_an_error_that_says_when_to_retry_sends_retry_after() -> None:
    error = errors.ResourceExhausted(metadata={errors.RETRY_AFTER_METADATA: "40"})

    status = to_grpc_status(error, domain="medstation.chat")

    assert status.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert dict(status.trailing_metadata)["retry-after"] == "40"
    assert _decode(status).code == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
    assert "retry-after" not in dict(
        to_grpc_status(PatientNotFound(), domain="x").trailing_metadata
    )
