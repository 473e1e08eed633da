import pytest

from medstation_platform.settings import ServiceSettings, load_settings


def test_valid_environment_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDSTATION_GRPC_PORT", "50099")
    monkeypatch.setenv("MEDSTATION_DATABASE_URL", "postgresql+psycopg://u@h/db")
    settings = load_settings(ServiceSettings)
    assert settings.grpc_port == 50099


def test_invalid_environment_exits_naming_each_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MEDSTATION_GRPC_PORT", "not-a-port")
    monkeypatch.setenv("MEDSTATION_DATABASE_URL", "mysql://nope")
    with pytest.raises(SystemExit) as exited:
        load_settings(ServiceSettings)
    assert exited.value.code == 2
    message = capsys.readouterr().err
    assert "MEDSTATION_GRPC_PORT" in message
    assert "MEDSTATION_DATABASE_URL" in message
