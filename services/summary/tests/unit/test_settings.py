import pytest

from medstation_platform.secret import Secret
from medstation_platform.settings import load_settings
from summary.settings import SummarySettings


def test_the_language_model_variables_keep_their_names() -> None:
    settings = load_settings(
        SummarySettings,
        {
            "MEDSTATION_LLM_TIMEOUT_SECONDS": "5",
            "MEDSTATION_ANTHROPIC_API_KEY": "sk-ant",
            "MEDSTATION_JOB_TIMEOUT_SECONDS": "50",
        },
    )

    assert settings.llm.llm_timeout_seconds == 5.0
    assert settings.llm.anthropic_api_key == Secret("sk-ant")
    assert settings.job_timeout_seconds == 50.0


def test_a_claim_idle_time_within_the_lease_is_refused_naming_both_variables(
    capsys: pytest.CaptureFixture[str],
) -> None:
    environ = {"MEDSTATION_JOB_LEASE_SECONDS": "30", "MEDSTATION_JOB_CLAIM_IDLE_SECONDS": "30"}

    with pytest.raises(SystemExit):
        load_settings(SummarySettings, environ)

    assert capsys.readouterr().err.splitlines()[1:] == [
        "  MEDSTATION_JOB_CLAIM_IDLE_SECONDS must exceed MEDSTATION_JOB_LEASE_SECONDS"
    ]


def test_an_unset_claim_idle_time_follows_the_job_timeout_and_lease() -> None:
    settings = SummarySettings(job_timeout_seconds=20.0, job_lease_seconds=40.0)

    assert settings.claim_idle_seconds == 80.0
