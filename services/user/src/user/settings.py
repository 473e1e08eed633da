"""The user service's configuration (MEDSTATION_* environment variables)."""

from __future__ import annotations

from pydantic import Field, SecretStr

from medstation_platform.settings import ServiceSettings


class UserSettings(ServiceSettings):
    grpc_port: int = Field(default=50051, ge=0, le=65535)
    database_url: str = Field(
        default="postgresql+psycopg://medstation_user@127.0.0.1:5432/medstation_user",
        pattern=r"^postgresql\+psycopg://",
    )
    admin_email: str = Field(default="admin@medstation.local", min_length=3)
    admin_password: SecretStr = SecretStr("change-me-admin-password")
    access_token_ttl_seconds: int = Field(default=900, ge=60, le=3600)
    # A session (one refresh-token family) ends after 30 minutes without a refresh, and
    # 12 hours after sign-in however active it is (HIPAA 164.312(a)(2)(iii) automatic
    # logoff); an idle time above the absolute one is simply capped by it.
    refresh_token_idle_seconds: int = Field(default=30 * 60, ge=60)
    refresh_token_absolute_seconds: int = Field(default=12 * 3600, ge=60)
    # Private signing keys are stored encrypted with this passphrase.
    signing_key_passphrase: SecretStr = SecretStr("local-development-signing-key-passphrase")
    login_failure_limit: int = Field(default=20, ge=1)
    login_failure_window_seconds: int = Field(default=60, ge=1)
