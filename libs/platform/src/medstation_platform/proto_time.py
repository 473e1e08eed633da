"""Datetimes to protobuf Timestamps (RFC 3339 UTC in JSON through the gateway)."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf import timestamp_pb2

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SECONDS_PER_DAY = 86_400


def to_timestamp(value: datetime) -> timestamp_pb2.Timestamp:
    """An aware datetime as a Timestamp; naive datetimes are refused, not guessed at."""
    if value.tzinfo is None:
        raise ValueError("naive datetime: store and pass times with their zone (UTC)")
    # Exact integer arithmetic on the offset from the epoch: a quarter of the CPU of
    # Timestamp.FromDatetime, which goes through a time tuple, and a page of patients
    # converts a hundred of them.
    since_epoch = value - _EPOCH
    return timestamp_pb2.Timestamp(
        seconds=since_epoch.days * _SECONDS_PER_DAY + since_epoch.seconds,
        nanos=since_epoch.microseconds * 1000,
    )
