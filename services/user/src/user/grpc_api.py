"""UserService over gRPC: translate proto ⇄ domain and call one use case per RPC."""

from __future__ import annotations

from google.api import httpbody_pb2
from google.protobuf import empty_pb2

from medstation.user.v1 import user_service_pb2 as pb
from medstation.user.v1 import user_service_pb2_grpc as pb_grpc
from medstation_platform.auth.principal import require_principal
from medstation_platform.field_mask import fields_to_update
from medstation_platform.proto_time import to_timestamp
from medstation_platform.rpc.interceptors import Context
from user import use_cases
from user.domain import User
from user.use_cases import Identity, ProfileChanges

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["UserService"].full_name
PUBLIC_METHODS = frozenset(
    f"/{SERVICE_NAME}/{method}" for method in ("Register", "Login", "Refresh", "Logout", "GetJwks")
)
TOKEN_TYPE = "Bearer"  # noqa: S105  # the OAuth 2 token type, not a secret
_UPDATABLE = ("display_name", "password")
_CREDENTIALS = ("current_password",)


def user_to_proto(user: User) -> pb.User:
    return pb.User(
        id=user.id,
        email=user.email,
        display_name=user.display_name,
        role=user.role,
        active=user.active,
        created_at=to_timestamp(user.created_at),
        updated_at=to_timestamp(user.updated_at),
    )


class UserServicer(pb_grpc.UserServiceServicer):
    def __init__(self, identity: Identity) -> None:
        self._identity = identity

    async def Register(self, request: pb.RegisterRequest, context: Context) -> pb.User:
        user = await use_cases.register(
            self._identity,
            email=request.email,
            password=request.password,
            display_name=request.display_name,
        )
        return user_to_proto(user)

    async def Login(self, request: pb.LoginRequest, context: Context) -> pb.LoginResponse:
        tokens = await use_cases.login(
            self._identity, email=request.email, password=request.password
        )
        return pb.LoginResponse(
            access_token=tokens.access_token,
            refresh_token=tokens.refresh_token,
            token_type=TOKEN_TYPE,
            expires_in=tokens.expires_in,
        )

    async def Refresh(self, request: pb.RefreshRequest, context: Context) -> pb.RefreshResponse:
        tokens = await use_cases.refresh(self._identity, refresh_token=request.refresh_token)
        return pb.RefreshResponse(
            access_token=tokens.access_token,
            refresh_token=tokens.refresh_token,
            token_type=TOKEN_TYPE,
            expires_in=tokens.expires_in,
        )

    async def Logout(self, request: pb.LogoutRequest, context: Context) -> empty_pb2.Empty:
        await use_cases.logout(self._identity, refresh_token=request.refresh_token)
        return empty_pb2.Empty()

    async def GetMe(self, request: pb.GetMeRequest, context: Context) -> pb.User:
        return user_to_proto(await use_cases.get_me(self._identity, require_principal()))

    async def UpdateMe(self, request: pb.UpdateMeRequest, context: Context) -> pb.User:
        body = request.user
        fields = fields_to_update(
            body, request.update_mask, updatable=_UPDATABLE, credentials=_CREDENTIALS
        )
        changes = ProfileChanges(
            display_name=body.display_name if "display_name" in fields else None,
            password=body.password if "password" in fields else None,
            current_password=body.current_password if body.HasField("current_password") else None,
        )
        return user_to_proto(
            await use_cases.update_me(self._identity, require_principal(), changes)
        )

    async def ListUsers(
        self, request: pb.ListUsersRequest, context: Context
    ) -> pb.ListUsersResponse:
        page = await use_cases.list_users(
            self._identity,
            require_principal(),
            page_size=request.page_size,
            page_token=request.page_token,
            role=request.role,
        )
        return pb.ListUsersResponse(
            users=[user_to_proto(user) for user in page.items],
            next_page_token=page.next_page_token,
        )

    async def GetUser(self, request: pb.GetUserRequest, context: Context) -> pb.User:
        return user_to_proto(
            await use_cases.get_user(self._identity, require_principal(), request.id)
        )

    async def SetRole(self, request: pb.SetRoleRequest, context: Context) -> pb.User:
        user = await use_cases.set_role(
            self._identity, require_principal(), request.id, request.role
        )
        return user_to_proto(user)

    async def Deactivate(self, request: pb.DeactivateRequest, context: Context) -> pb.User:
        return user_to_proto(
            await use_cases.deactivate(self._identity, require_principal(), request.id)
        )

    async def GetJwks(self, request: pb.GetJwksRequest, context: Context) -> httpbody_pb2.HttpBody:
        document = await use_cases.get_jwks(self._identity.unit_of_work)
        return httpbody_pb2.HttpBody(content_type="application/json", data=document)
