"""The model catalogue over gRPC: the offline model from the first start, admin-only
changes, enabled models for clinicians, and chats only on enabled models."""

from __future__ import annotations

import secrets

import grpc
from google.protobuf import field_mask_pb2

from devstack.rpc_failures import failure
from medstation.chat.v1 import chat_service_pb2 as pb
from services.chat.tests.integration.chat_client import OFFLINE_MODEL, ChatClient
from services.patient_record.tests.integration.patient_client import UNKNOWN_ID, Caller


async def _create(client: ChatClient, admin: Caller, **fields: object) -> pb.Model:
    request = pb.CreateModelRequest(
        name=f"model-{secrets.token_hex(4)}", provider="ollama", enabled=True
    )
    for name, value in fields.items():
        setattr(request, name, value)
    return await client.stub.CreateModel(request, metadata=admin.metadata)


async def _disable(client: ChatClient, admin: Caller, model_id: str) -> pb.Model:
    return await client.stub.UpdateModel(
        pb.UpdateModelRequest(
            model=pb.Model(id=model_id, enabled=False),
            update_mask=field_mask_pb2.FieldMask(paths=["enabled"]),
        ),
        metadata=admin.metadata,
    )


async def test_the_offline_model_is_ready_from_the_start(client: ChatClient) -> None:
    doctor = client.clinician()
    page = await client.stub.ListModels(pb.ListModelsRequest(), metadata=doctor.metadata)

    [offline] = [m for m in page.models if m.name == OFFLINE_MODEL]
    assert (offline.provider, offline.price_per_million_tokens, offline.enabled) == (
        "offline",
        0.0,
        True,
    )


async def test_only_admins_change_the_catalogue(client: ChatClient) -> None:
    doctor, admin = client.clinician(), client.admin()
    model = await _create(client, admin, price_per_million_tokens=1.25)

    created = await failure(_create(client, doctor))
    updated = await failure(_disable(client, doctor, model.id))

    for failed in (created, updated):
        assert (failed.code, failed.reason) == (grpc.StatusCode.PERMISSION_DENIED, "ADMIN_REQUIRED")
    assert model.price_per_million_tokens == 1.25
    renamed = await client.stub.UpdateModel(
        pb.UpdateModelRequest(model=pb.Model(id=model.id, name=f"{model.name}-v2")),
        metadata=admin.metadata,
    )
    assert (renamed.name, renamed.provider, renamed.enabled) == (
        f"{model.name}-v2",
        "ollama",
        True,
    )


async def test_a_bad_or_taken_model_is_refused_naming_the_field(client: ChatClient) -> None:
    admin = client.admin()
    model = await _create(client, admin)

    unknown_provider = await failure(_create(client, admin, provider="skynet"))
    taken = await failure(_create(client, admin, name=model.name))
    negative = await failure(_create(client, admin, price_per_million_tokens=-1))
    missing = await failure(_disable(client, admin, UNKNOWN_ID))

    assert (unknown_provider.code, unknown_provider.fields) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        ["provider"],
    )
    assert (taken.code, taken.reason, taken.fields) == (
        grpc.StatusCode.ALREADY_EXISTS,
        "MODEL_ALREADY_EXISTS",
        ["name"],
    )
    assert (negative.code, negative.fields) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        ["price_per_million_tokens"],
    )
    assert (missing.code, missing.reason) == (grpc.StatusCode.NOT_FOUND, "MODEL_NOT_FOUND")


async def test_clinicians_see_only_enabled_models(client: ChatClient) -> None:
    doctor, admin = client.clinician(), client.admin()
    model = await _create(client, admin)
    await _disable(client, admin, model.id)

    seen_by_doctor = await client.stub.ListModels(
        pb.ListModelsRequest(page_size=100), metadata=doctor.metadata
    )
    seen_by_admin = await client.stub.ListModels(
        pb.ListModelsRequest(page_size=100), metadata=admin.metadata
    )

    assert model.id not in [m.id for m in seen_by_doctor.models]
    assert model.id in [m.id for m in seen_by_admin.models]
    assert all(m.enabled for m in seen_by_doctor.models)


async def test_chats_need_an_enabled_model(client: ChatClient) -> None:
    doctor, admin = client.clinician(), client.admin()
    model = await _create(client, admin, provider="offline")
    chat = await client.create_chat(doctor, model_id=model.id)
    await client.send(doctor, chat.id, "hello")

    await _disable(client, admin, model.id)

    on_disabled = await failure(client.create_chat(doctor, model_id=model.id))
    on_unknown = await failure(client.create_chat(doctor, model_id=UNKNOWN_ID))
    sending = await failure(client.send(doctor, chat.id, "still there?"))
    assert (on_disabled.code, on_disabled.reason, on_disabled.fields) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "MODEL_DISABLED",
        ["model_id"],
    )
    assert (on_unknown.code, on_unknown.reason, on_unknown.fields) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "UNKNOWN_MODEL",
        ["model_id"],
    )
    assert (sending.code, sending.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "MODEL_DISABLED")
    assert len(await client.messages(doctor, chat.id)) == 2
