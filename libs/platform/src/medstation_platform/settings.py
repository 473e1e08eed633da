"""Typed settings read from the environment; invalid configuration stops the process at start."""

from __future__ import annotations

import sys
from typing import TypeVar

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

SettingsT = TypeVar("SettingsT", bound="ServiceSettings")


class ServiceSettings(BaseSettings):
    """What every MedStation service process needs; services subclass it for their own."""

    model_config = SettingsConfigDict(env_prefix="MEDSTATION_", extra="ignore", frozen=True)

    grpc_host: str = "127.0.0.1"
    grpc_port: int = Field(ge=0, le=65535)
    metrics_port: int = Field(default=0, ge=0, le=65535, description="0 disables metrics")
    database_url: str = Field(pattern=r"^postgresql\+psycopg://")
    database_pool_size: int = Field(default=10, ge=1, le=200)
    # Autocommit connections for single statements (medstation_platform.statement_pool),
    # beside the engine's pool for transactions.
    database_statement_pool_size: int = Field(default=4, ge=1, le=200)
    database_statement_timeout_ms: int = Field(default=10_000, ge=100)
    redis_url: str = Field(default="redis://127.0.0.1:6379/0", pattern=r"^rediss?://")
    redis_timeout_seconds: float = Field(default=1.0, gt=0)
    jwt_issuer: str = "medstation"
    jwt_audience: str = "medstation-api"
    user_service_addr: str = "127.0.0.1:50051"
    page_token_secret: SecretStr = SecretStr("local-development-page-token-secret")
    log_level: str = Field(default="INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR)$")
    # On SIGTERM: report NOT_SERVING and keep serving for the drain period (Envoy's
    # health checks run every second, two failures eject), then give in-flight calls the
    # grace period. Kubernetes' terminationGracePeriodSeconds must exceed their sum.
    shutdown_drain_seconds: float = Field(default=2.0, ge=0)
    shutdown_grace_seconds: float = Field(default=10.0, ge=0)


def load_settings(settings_class: type[SettingsT]) -> SettingsT:
    """Read settings, or exit with one line per problem naming the environment variable."""
    try:
        return settings_class()  # type: ignore[call-arg]  # values come from the environment
    except ValidationError as error:
        prefix = str(settings_class.model_config.get("env_prefix", ""))
        lines = [f"invalid configuration for {settings_class.__name__}:"]
        for problem in error.errors():
            variable = prefix + "_".join(str(part) for part in problem["loc"]).upper()
            lines.append(f"  {variable}: {problem['msg']}")
        sys.stderr.write("\n".join(lines) + "\n")
        raise SystemExit(2) from None
