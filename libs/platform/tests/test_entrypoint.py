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


def test_a_serving_process_loads_no_migration_tool_http_client_or_pydantic() -> None:
    # Alembic and Mako (~10 MB of resident memory) only `migrate` needs; httpx (~8 MB with
    # its tracing) only a process calling a remote language model; pydantic (~8 MB with
    # pydantic-settings) nothing: settings are msgspec Structs.
    probe = """
import sys
import chat.__main__, patient_record.__main__, summary.__main__, user.__main__
from medstation_llm.registry import OFFLINE, OFFLINE_MODEL, ModelRegistry
from medstation_llm.settings import LlmSettings
from medstation_platform.telemetry import configure_tracing

configure_tracing("probe")
models = ModelRegistry(LlmSettings())
models.language_model(OFFLINE), models.summarizer(OFFLINE, OFFLINE_MODEL)
unwanted = ("alembic", "mako", "httpx", "pydantic", "pydantic_core", "pydantic_settings")
print(sorted(m for m in sys.modules if m.split(".")[0] in unwanted))
"""
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert loaded == "[]"
