from chat.settings import ChatSettings
from medstation_platform.secret import Secret
from medstation_platform.settings import load_settings


def test_the_language_model_variables_keep_their_names() -> None:
    settings = load_settings(
        ChatSettings,
        {
            "MEDSTATION_LLM_MAX_ATTEMPTS": "2",
            "MEDSTATION_OLLAMA_BASE_URL": "http://127.0.0.1:11434",
            "MEDSTATION_OPENAI_API_KEY": "sk-openai",
            "MEDSTATION_RATE_LIMIT_MESSAGES": "5",
        },
    )

    assert settings.llm.llm_max_attempts == 2
    assert settings.llm.ollama_base_url == "http://127.0.0.1:11434"
    assert settings.llm.openai_api_key == Secret("sk-openai")
    assert settings.rate_limit_messages == 5
    assert settings.grpc_port == 50054
