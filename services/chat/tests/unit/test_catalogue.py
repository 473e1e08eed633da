"""The model catalogue: the offline model from the start, admins curate, clinicians see
what is enabled, and chats only start on enabled models."""

from __future__ import annotations

import pytest

from chat import use_cases
from chat.domain import (
    AdminRequired,
    Model,
    ModelDisabled,
    ModelNameTaken,
    ModelNotFound,
    UnknownModel,
)
from chat.use_cases import ChatDetails, Chats, ModelChanges, ModelDetails, PageRequest
from medstation_platform import errors
from medstation_platform.auth.principal import Principal
from services.chat.tests.unit import samples
from services.chat.tests.unit.fakes import FakeDatabase

UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"


async def test_the_offline_model_is_there_for_everyone_from_the_start(
    chats: Chats, doctor: Principal
) -> None:
    page = await use_cases.list_models(chats, doctor, samples.FIRST_PAGE)

    [model] = page.items
    assert (model.name, model.provider, model.price_per_million_tokens, model.enabled) == (
        "medstation-offline",
        "offline",
        0.0,
        True,
    )


async def test_an_admin_adds_a_model(chats: Chats, admin: Principal) -> None:
    details = ModelDetails(" gpt-4o-mini ", "openai", 0.6, True)

    model = await use_cases.create_model(chats, admin, details)

    assert (model.name, model.provider, model.price_per_million_tokens) == (
        "gpt-4o-mini",
        "openai",
        0.6,
    )
    listed = await use_cases.list_models(chats, admin, samples.FIRST_PAGE)
    assert model in listed.items


async def test_only_admins_change_the_catalogue(
    chats: Chats, doctor: Principal, offline_model: Model, database: FakeDatabase
) -> None:
    with pytest.raises(AdminRequired):
        await use_cases.create_model(chats, doctor, ModelDetails("mine", "offline", 0, True))
    with pytest.raises(AdminRequired):
        await use_cases.update_model(chats, doctor, offline_model.id, ModelChanges(enabled=False))

    assert list(database.committed.models.values()) == [offline_model]


async def test_the_provider_must_be_one_we_can_talk_to(chats: Chats, admin: Principal) -> None:
    with pytest.raises(errors.InvalidArgument) as created:
        await use_cases.create_model(chats, admin, ModelDetails("x", "skynet", 0, True))
    model = await samples.model(chats, admin, "llama3", provider="ollama")
    with pytest.raises(errors.InvalidArgument) as updated:
        await use_cases.update_model(chats, admin, model.id, ModelChanges(provider="skynet"))

    assert [v.field for v in created.value.violations] == ["provider"]
    assert [v.field for v in updated.value.violations] == ["model.provider"]


async def test_model_names_are_unique(chats: Chats, admin: Principal) -> None:
    await samples.model(chats, admin, "claude-sonnet", provider="anthropic")
    other = await samples.model(chats, admin, "gpt-4o", provider="openai")

    with pytest.raises(ModelNameTaken) as created:
        await samples.model(chats, admin, "claude-sonnet", provider="anthropic")
    with pytest.raises(ModelNameTaken) as renamed:
        await use_cases.update_model(chats, admin, other.id, ModelChanges(name="claude-sonnet"))

    assert [v.field for v in created.value.violations] == ["name"]
    assert [v.field for v in renamed.value.violations] == ["model.name"]


async def test_an_update_changes_only_the_fields_given(chats: Chats, admin: Principal) -> None:
    model = await samples.model(chats, admin, "gpt-4o", provider="openai", price=2.5)

    updated = await use_cases.update_model(
        chats, admin, model.id, ModelChanges(price_per_million_tokens=5.0, enabled=False)
    )

    assert (updated.name, updated.provider) == ("gpt-4o", "openai")
    assert (updated.price_per_million_tokens, updated.enabled) == (5.0, False)
    assert updated.updated_at > model.updated_at
    assert updated.created_at == model.created_at


async def test_updating_an_unknown_model_is_not_found(chats: Chats, admin: Principal) -> None:
    with pytest.raises(ModelNotFound):
        await use_cases.update_model(chats, admin, UNKNOWN_ID, ModelChanges(enabled=True))


async def test_clinicians_see_enabled_models_and_admins_see_all(
    chats: Chats, admin: Principal, doctor: Principal, offline_model: Model
) -> None:
    enabled = await samples.model(chats, admin, "on", provider="ollama")
    disabled = await samples.model(chats, admin, "off", provider="ollama", enabled=False)

    seen_by_doctor = await use_cases.list_models(chats, doctor, samples.FIRST_PAGE)
    seen_by_admin = await use_cases.list_models(chats, admin, samples.FIRST_PAGE)

    assert seen_by_doctor.items == [offline_model, enabled]
    assert seen_by_admin.items == [offline_model, enabled, disabled]


async def test_models_come_in_pages(chats: Chats, admin: Principal, doctor: Principal) -> None:
    for index in range(4):
        await samples.model(chats, admin, f"model-{index}", provider="ollama")

    first = await use_cases.list_models(chats, doctor, PageRequest(3, ""))
    second = await use_cases.list_models(chats, doctor, PageRequest(3, first.next_page_token))

    names = [model.name for model in first.items + second.items]
    assert names == ["medstation-offline", "model-0", "model-1", "model-2", "model-3"]
    assert second.next_page_token == ""
    # The token belongs to the clinician's view of the list, not the admin's.
    with pytest.raises(errors.InvalidPageToken):
        await use_cases.list_models(chats, admin, PageRequest(3, first.next_page_token))


async def test_a_chat_starts_only_on_an_enabled_model(
    chats: Chats, admin: Principal, doctor: Principal
) -> None:
    disabled = await samples.model(chats, admin, "off", provider="ollama", enabled=False)

    with pytest.raises(ModelDisabled) as on_disabled:
        await samples.chat(chats, doctor, disabled)
    with pytest.raises(UnknownModel) as on_unknown:
        await use_cases.create_chat(chats, doctor, ChatDetails("", UNKNOWN_ID, ""))

    assert [v.field for v in on_disabled.value.violations] == ["model_id"]
    assert [v.field for v in on_unknown.value.violations] == ["model_id"]


async def test_a_chat_whose_model_was_disabled_takes_no_more_messages(
    chats: Chats, admin: Principal, doctor: Principal, database: FakeDatabase
) -> None:
    model = await samples.model(chats, admin, "soon-off", provider="offline")
    chat = await samples.chat(chats, doctor, model)
    await samples.send(chats, doctor, chat.id, "first question")
    await use_cases.update_model(chats, admin, model.id, ModelChanges(enabled=False))

    with pytest.raises(ModelDisabled):
        await samples.send(chats, doctor, chat.id, "second question")

    assert len(database.messages_of(chat.id)) == 2
