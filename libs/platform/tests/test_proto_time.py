from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from google.protobuf import timestamp_pb2

from medstation_platform.proto_time import to_timestamp


@pytest.mark.parametrize(
    "value",
    [
        datetime(2026, 12, 6, 15, 48, 3, 470194, tzinfo=UTC),
        datetime(1970, 1, 1, tzinfo=UTC),
        datetime(1969, 12, 31, 23, 59, 59, 500000, tzinfo=UTC),  # before the epoch
        datetime(1900, 2, 28, 12, 0, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(2026, 3, 29, 2, 30, tzinfo=timezone(timedelta(hours=5, minutes=30))),
        datetime(2026, 3, 29, 2, 30, tzinfo=timezone(timedelta(hours=-8))),
    ],
)
def test_a_timestamp_is_the_same_instant_as_protobuf_makes_it(value: datetime) -> None:
    expected = timestamp_pb2.Timestamp()
    expected.FromDatetime(value)

    stamp = to_timestamp(value)

    assert stamp == expected
    assert stamp.ToDatetime(tzinfo=UTC) == value


def test_a_naive_datetime_is_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        to_timestamp(datetime(2026, 12, 6, 12, 0))
