from pathlib import Path

import pytest

from medstation_platform.entrypoint import run_command_line
from medstation_platform.settings import ServiceSettings


async def _never_serve(settings: ServiceSettings) -> None:
    raise AssertionError("must not serve")


def test_an_unknown_command_exits_saying_what_is_accepted(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MEDSTATION_GRPC_PORT", "0")
    monkeypatch.setenv("MEDSTATION_DATABASE_URL", "postgresql+psycopg://u@h/db")
    with pytest.raises(SystemExit, match="the only command is `migrate`"):
        run_command_line(
            ["migrat"], name="svc", settings_class=ServiceSettings, migrations=tmp_path,
            serve=_never_serve,
        )  # fmt: skip
