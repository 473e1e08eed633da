import subprocess
import sys
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
    with pytest.raises(SystemExit, match="the commands are `migrate`"):
        run_command_line(
            ["migrat"], name="svc", settings_class=ServiceSettings, migrations=tmp_path,
            serve=_never_serve,
        )  # fmt: skip


def test_a_serving_process_never_loads_the_migration_tool() -> None:
    # Alembic and Mako are ~10 MB of resident memory that only `migrate` needs.
    probe = (
        "import sys, medstation_platform.entrypoint, user.__main__, patient_record.__main__;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('alembic', 'mako')))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert loaded == "[]"
