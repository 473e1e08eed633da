"""Datetimes to protobuf Timestamps (RFC 3339 UTC in JSON through the gateway)."""

from __future__ import annotations

from datetime import datetime

from google.protobuf import timestamp_pb2


def to_timestamp(value: datetime) -> timestamp_pb2.Timestamp:
    """An aware datetime as a Timestamp; naive datetimes are refused, not guessed at."""
    if value.tzinfo is None:
        raise ValueError("naive datetime: store and pass times with their zone (UTC)")
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(value)
    return stamp
