"""The user service's configuration (MEDSTATION_* environment variables)."""

from __future__ import annotations

from typing import Annotated

import msgspec

from medstation_platform.secret import Secret
from medstation_platform.settings import DatabaseUrl, Port, ServiceSettings


class UserSettings(ServiceSettings, frozen=True, kw_only=True):
    grpc_port: Port = 50051
    database_url: DatabaseUrl = (
        "postgresql+psycopg://medstation_user@127.0.0.1:5432/medstation_user"
    )
    admin_email: Annotated[str, msgspec.Meta(min_length=3)] = "admin@medstation.local"
    admin_password: Secret = Secret("change-me-admin-password")
    access_token_ttl_seconds: Annotated[int, msgspec.Meta(ge=60, le=3600)] = 900
    # A session (one refresh-token family) ends after 30 minutes without a refresh, and
    # 12 hours after sign-in however active it is (HIPAA 164.312(a)(2)(iii) automatic
    # logoff); an idle time above the absolute one is simply capped by it.
    refresh_token_idle_seconds: Annotated[int, msgspec.Meta(ge=60)] = 30 * 60
    refresh_token_absolute_seconds: Annotated[int, msgspec.Meta(ge=60)] = 12 * 3600
    # Private signing keys are stored encrypted with this passphrase.
    signing_key_passphrase: Secret = Secret("local-development-signing-key-passphrase")
    login_failure_limit: Annotated[int, msgspec.Meta(ge=1)] = 20
    login_failure_window_seconds: Annotated[int, msgspec.Meta(ge=1)] = 60
