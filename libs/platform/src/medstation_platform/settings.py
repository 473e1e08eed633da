"""Typed settings read from the environment; invalid configuration stops the process at start.

A field `name` is read from `MEDSTATION_NAME` (any case), as a string converted to the
field's type: numbers from their text, booleans from true/false/1/0, a `Secret` from the
text as is, `X | None` from the text as an `X`. Unset variables keep the field's default;
variables that name no field are ignored. A field whose type is itself `Settings` (a library's
section, such as `medstation_llm.settings.LlmSettings`) is read from that section's own
variables, with no extra prefix: sections stand in for the fields a subclass would have
mixed in, which msgspec's single inheritance does not allow.

Settings are frozen. Tests derive changed ones with `msgspec.structs.replace`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import Annotated, Any, TypeVar

import msgspec

from medstation_platform.secret import Secret

ENV_PREFIX = "MEDSTATION_"

# Constraints more than one settings class declares.
Port = Annotated[int, msgspec.Meta(ge=0, le=65535)]
DatabaseUrl = Annotated[str, msgspec.Meta(pattern=r"^postgresql\+psycopg://")]

SectionT = TypeVar("SectionT", bound="Settings")
SettingsT = TypeVar("SettingsT", bound="ServiceSettings")


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Fields read from MEDSTATION_* variables by `load_settings`; subclass to declare some.

    A cross-field check goes in `__post_init__` and raises ValueError naming the variables
    (`variable_name`); it runs however the settings are built.
    """


class ServiceSettings(Settings, frozen=True, kw_only=True):
    """What every MedStation service process needs; services subclass it for their own."""

    grpc_host: str = "127.0.0.1"
    grpc_port: Port
    metrics_port: Annotated[int, msgspec.Meta(ge=0, le=65535, description="0 disables metrics")] = 0
    database_url: DatabaseUrl
    database_pool_size: Annotated[int, msgspec.Meta(ge=1, le=200)] = 10
    # Autocommit connections for single statements (medstation_platform.statement_pool),
    # beside the engine's pool for transactions.
    database_statement_pool_size: Annotated[int, msgspec.Meta(ge=1, le=200)] = 4
    database_statement_timeout_ms: Annotated[int, msgspec.Meta(ge=100)] = 10_000
    redis_url: Annotated[str, msgspec.Meta(pattern=r"^rediss?://")] = "redis://127.0.0.1:6379/0"
    redis_timeout_seconds: Annotated[float, msgspec.Meta(gt=0)] = 1.0
    jwt_issuer: str = "medstation"
    jwt_audience: str = "medstation-api"
    user_service_addr: str = "127.0.0.1:50051"
    page_token_secret: Secret = Secret("local-development-page-token-secret")
    log_level: Annotated[str, msgspec.Meta(pattern=r"^(DEBUG|INFO|WARNING|ERROR)$")] = "INFO"
    # On SIGTERM: report NOT_SERVING and keep serving for the drain period (Envoy's
    # health checks run every second, two failures eject), then give in-flight calls the
    # grace period. Kubernetes' terminationGracePeriodSeconds must exceed their sum.
    shutdown_drain_seconds: Annotated[float, msgspec.Meta(ge=0)] = 2.0
    shutdown_grace_seconds: Annotated[float, msgspec.Meta(ge=0)] = 10.0


def variable_name(field: str) -> str:
    """The environment variable that sets `field`."""
    return ENV_PREFIX + field.upper()


def load_settings(
    settings_class: type[SectionT], environ: Mapping[str, str] = os.environ
) -> SectionT:
    """Read settings, or exit with one line per problem naming the environment variable."""
    by_upper_name = {name.upper(): value for name, value in environ.items()}
    settings, problems = _read(settings_class, by_upper_name, claimed=set())
    if settings is None:
        lines = [f"invalid configuration for {settings_class.__name__}:"]
        lines += (f"  {problem}" for problem in problems)
        sys.stderr.write("\n".join(lines) + "\n")
        raise SystemExit(2)
    return settings


def _read(
    section: type[SectionT], environ: Mapping[str, str], claimed: set[str]
) -> tuple[SectionT | None, list[str]]:
    """The section built from `environ`, or None and every problem found.

    Field by field, because msgspec.convert stops at the first error and an operator
    should learn of every bad variable at once.
    """
    values: dict[str, Any] = {}
    problems: list[str] = []
    for field in msgspec.structs.fields(section):
        if isinstance(field.type, type) and issubclass(field.type, Settings):
            value, found = _read(field.type, environ, claimed)
            values[field.name] = value
            problems += found
            continue
        variable = variable_name(field.name)
        if variable in claimed:
            raise TypeError(f"{section.__name__}.{field.name}: {variable} already sets a field")
        claimed.add(variable)
        if variable in environ:
            try:
                values[field.name] = msgspec.convert(
                    environ[variable], field.type, strict=False, dec_hook=_secret_from_text
                )
            except msgspec.ValidationError as error:
                problems.append(f"{variable}: {error}")
        elif field.required:
            problems.append(f"{variable}: required, not set")
    if problems:
        return None, problems
    try:
        return section(**values), []
    except ValueError as error:  # a cross-field check in __post_init__
        return None, [str(error)]


def _secret_from_text(kind: type, value: object) -> object:
    if kind is Secret and isinstance(value, str):
        return Secret(value)
    raise NotImplementedError(f"settings cannot hold {kind.__name__}")
