import pytest

from medstation_platform import errors
from medstation_platform.pagination import PageTokenCodec, resolve_page_size


def test_page_size_defaults_and_is_coerced_to_the_maximum() -> None:
    assert resolve_page_size(0) == 50
    assert resolve_page_size(7) == 7
    assert resolve_page_size(1000) == 100


def test_negative_page_size_names_the_field() -> None:
    with pytest.raises(errors.InvalidArgument) as raised:
        resolve_page_size(-1)
    assert raised.value.violations[0].field == "page_size"


def test_token_round_trips_within_its_scope() -> None:
    codec = PageTokenCodec(b"secret")
    token = codec.encode("users:role=", ["2026-11-22T00:00:00+00:00", "id-1"])
    assert codec.decode("users:role=", token) == ["2026-11-22T00:00:00+00:00", "id-1"]


@pytest.mark.parametrize(
    "tamper",
    [
        lambda token: token[:-2] + ("AA" if token[-2:] != "AA" else "BB"),
        lambda token: "garbage!!",
        lambda token: "",
    ],
)
def test_edited_or_garbage_token_is_rejected(tamper: object) -> None:
    codec = PageTokenCodec(b"secret")
    token = codec.encode("scope", [1, "x"])
    with pytest.raises(errors.InvalidPageToken):
        codec.decode("scope", tamper(token))  # type: ignore[operator]


def test_token_from_another_list_or_secret_is_rejected() -> None:
    token = PageTokenCodec(b"secret").encode("users:role=admin", [1])
    with pytest.raises(errors.InvalidPageToken):
        PageTokenCodec(b"secret").decode("users:role=", token)
    with pytest.raises(errors.InvalidPageToken):
        PageTokenCodec(b"other").decode("users:role=admin", token)
