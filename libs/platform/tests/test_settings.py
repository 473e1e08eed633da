from __future__ import annotations

import logging
from typing import Annotated

import msgspec
import pytest

from medstation_platform.secret import Secret
from medstation_platform.settings import (
    DatabaseUrl,
    Port,
    ServiceSettings,
    Settings,
    load_settings,
)

REQUIRED = {
    "MEDSTATION_GRPC_PORT": "50099",
    "MEDSTATION_DATABASE_URL": "postgresql+psycopg://u@h/db",
}


class Endpoint(Settings, frozen=True, kw_only=True):
    """A section, as a library would declare one (LlmSettings)."""

    endpoint_url: Annotated[str, msgspec.Meta(pattern=r"^https?://")] = "http://default"
    endpoint_key: Secret | None = None


class Toggles(ServiceSettings, frozen=True, kw_only=True):
    """Kinds of field ServiceSettings itself does not have."""

    grpc_port: Port = 50000
    database_url: DatabaseUrl = "postgresql+psycopg://toggles@127.0.0.1/toggles"
    verbose: bool = False
    name: Annotated[str, msgspec.Meta(min_length=1)] = "toggles"
    batch_limit: int | None = None
    endpoint: Endpoint = msgspec.field(default_factory=Endpoint)
    low: float = 0.0
    high: float = 1.0

    def __post_init__(self) -> None:
        if self.low >= self.high:
            raise ValueError("MEDSTATION_LOW must be below MEDSTATION_HIGH")


def _problems(
    settings_class: type[Settings], environ: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> list[str]:
    """The lines after the header, once load_settings has exited with code 2."""
    with pytest.raises(SystemExit) as exited:
        load_settings(settings_class, environ)
    assert exited.value.code == 2
    header, *problems = capsys.readouterr().err.splitlines()
    assert header == f"invalid configuration for {settings_class.__name__}:"
    return problems


def test_unset_variables_keep_the_defaults() -> None:
    settings = load_settings(ServiceSettings, REQUIRED)

    assert settings == ServiceSettings(grpc_port=50099, database_url="postgresql+psycopg://u@h/db")
    assert settings.metrics_port == 0
    assert settings.redis_url == "redis://127.0.0.1:6379/0"
    assert settings.log_level == "INFO"
    assert settings.shutdown_grace_seconds == 10.0


def test_numbers_are_read_from_their_text() -> None:
    settings = load_settings(
        ServiceSettings,
        {
            **REQUIRED,
            "MEDSTATION_DATABASE_POOL_SIZE": "25",
            "MEDSTATION_REDIS_TIMEOUT_SECONDS": "0.25",
        },
    )

    assert settings.grpc_port == 50099
    assert settings.database_pool_size == 25
    assert settings.redis_timeout_seconds == 0.25


def test_a_subclass_default_replaces_a_required_field() -> None:
    assert load_settings(Toggles, {}).grpc_port == 50000


@pytest.mark.parametrize(
    ("text", "expected"), [("true", True), ("FALSE", False), ("1", True), ("0", False)]
)
def test_booleans_are_read_from_true_false_1_0(text: str, expected: bool) -> None:
    assert load_settings(Toggles, {"MEDSTATION_VERBOSE": text}).verbose is expected


def test_an_optional_field_is_none_unless_set() -> None:
    assert load_settings(Toggles, {}).batch_limit is None
    assert load_settings(Toggles, {"MEDSTATION_BATCH_LIMIT": "7"}).batch_limit == 7


def test_variable_names_are_matched_in_any_case() -> None:
    settings = load_settings(Toggles, {"medstation_grpc_port": "1", "Medstation_Verbose": "true"})

    assert (settings.grpc_port, settings.verbose) == (1, True)


def test_variables_that_name_no_field_are_ignored() -> None:
    assert load_settings(Toggles, {"MEDSTATION_NO_SUCH_FIELD": "x"}) == Toggles()


def test_a_section_is_read_from_its_own_unprefixed_variables() -> None:
    settings = load_settings(
        Toggles,
        {"MEDSTATION_ENDPOINT_URL": "https://models", "MEDSTATION_ENDPOINT_KEY": "sk-1"},
    )

    assert settings.endpoint.endpoint_url == "https://models"
    assert settings.endpoint.endpoint_key == Secret("sk-1")
    assert load_settings(Toggles, {}).endpoint == Endpoint()


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("MEDSTATION_GRPC_PORT", "not-a-port"),  # not a number
        ("MEDSTATION_GRPC_PORT", "65536"),  # le
        ("MEDSTATION_DATABASE_POOL_SIZE", "0"),  # ge
        ("MEDSTATION_REDIS_TIMEOUT_SECONDS", "0"),  # gt
        ("MEDSTATION_DATABASE_URL", "mysql://nope"),  # pattern
        ("MEDSTATION_LOG_LEVEL", "LOUD"),  # pattern
        ("MEDSTATION_NAME", ""),  # min_length
        ("MEDSTATION_VERBOSE", "yes"),  # not a boolean
        ("MEDSTATION_BATCH_LIMIT", ""),  # optional, but not empty
        ("MEDSTATION_ENDPOINT_URL", "ftp://models"),  # in a section
    ],
)
def test_an_invalid_variable_exits_naming_it(
    variable: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    problems = _problems(Toggles, {**REQUIRED, variable: value}, capsys)

    assert len(problems) == 1
    assert problems[0].startswith(f"  {variable}: ")


def test_a_missing_required_variable_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    problems = _problems(ServiceSettings, {"MEDSTATION_GRPC_PORT": "1"}, capsys)

    assert problems == ["  MEDSTATION_DATABASE_URL: required, not set"]


def test_every_bad_variable_is_reported_at_once(capsys: pytest.CaptureFixture[str]) -> None:
    environ = {
        "MEDSTATION_GRPC_PORT": "-1",
        "MEDSTATION_METRICS_PORT": "many",
        "MEDSTATION_REDIS_URL": "http://cache",
    }

    problems = _problems(ServiceSettings, environ, capsys)

    named = [line.split(":")[0].strip() for line in problems]
    assert named == [
        "MEDSTATION_GRPC_PORT",
        "MEDSTATION_METRICS_PORT",
        "MEDSTATION_DATABASE_URL",
        "MEDSTATION_REDIS_URL",
    ]


def test_a_cross_field_check_is_reported(capsys: pytest.CaptureFixture[str]) -> None:
    problems = _problems(Toggles, {"MEDSTATION_LOW": "2", "MEDSTATION_HIGH": "1"}, capsys)

    assert problems == ["  MEDSTATION_LOW must be below MEDSTATION_HIGH"]


def test_a_rejected_value_is_not_echoed(capsys: pytest.CaptureFixture[str]) -> None:
    # A password pasted into the wrong variable must not reach the log.
    problems = _problems(ServiceSettings, {**REQUIRED, "MEDSTATION_GRPC_PORT": "hunter2"}, capsys)

    assert "hunter2" not in "\n".join(problems)


def test_secrets_are_never_shown(caplog: pytest.LogCaptureFixture) -> None:
    settings = load_settings(
        Toggles,
        {"MEDSTATION_PAGE_TOKEN_SECRET": "s3cr3t-page", "MEDSTATION_ENDPOINT_KEY": "s3cr3t-key"},
    )

    with caplog.at_level(logging.INFO):
        logging.getLogger("test").info("settings %s %r", settings, settings)
    for shown in (repr(settings), str(settings), f"{settings}", caplog.text):
        assert "s3cr3t" not in shown
    assert settings.page_token_secret.get_secret_value() == "s3cr3t-page"


def test_settings_are_frozen() -> None:
    settings = load_settings(ServiceSettings, REQUIRED)

    with pytest.raises(AttributeError):
        settings.grpc_port = 1  # type: ignore[misc]


def test_two_fields_reading_one_variable_is_a_programming_error() -> None:
    class Clash(Settings, frozen=True, kw_only=True):
        endpoint_url: str = ""
        endpoint: Endpoint = msgspec.field(default_factory=Endpoint)

    with pytest.raises(TypeError, match="MEDSTATION_ENDPOINT_URL"):
        load_settings(Clash, {})
