"""What the user service does, one function per use case; each commits at most once."""

from __future__ import annotations

import hashlib
import logging
import secrets
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from medstation_platform.auth.principal import Principal
from medstation_platform.pagination import Page, PageTokenCodec, resolve_page_size
from user.domain import (
    ADMIN,
    CLINICIAN,
    AccountInactive,
    AdminRequired,
    InvalidCredentials,
    IssuedTokens,
    LoginThrottled,
    OwnAccountProtected,
    RefreshToken,
    RefreshTokenInvalid,
    RefreshTokenReused,
    SessionPolicy,
    SigningKey,
    User,
    UserNotFound,
    WrongCurrentPassword,
    clean_display_name,
    normalize_email,
)
from user.passwords import Passwords
from user.repository import UserUnitOfWork
from user.signing import TokenMinter, jwks_document, new_signing_key

logger = logging.getLogger(__name__)


class Throttle(Protocol):
    async def is_blocked(self, email: str) -> bool: ...
    async def record_failure(self, email: str) -> None: ...


class Revocations(Protocol):
    async def revoke_sessions(self, session_ids: Collection[str]) -> None: ...


class AccountReads(Protocol):
    """Accounts by id outside any transaction (user.account_reads)."""

    async def get(self, user_id: str) -> User | None: ...


@dataclass(frozen=True)
class Identity:
    """The user service's collaborators, built once by `bootstrap`."""

    unit_of_work: Callable[[], UserUnitOfWork]
    accounts: AccountReads
    passwords: Passwords
    throttle: Throttle
    revocations: Revocations
    minter: TokenMinter
    page_tokens: PageTokenCodec
    sessions: SessionPolicy
    clock: Callable[[], datetime]


@dataclass(frozen=True)
class ProfileChanges:
    display_name: str | None = None
    password: str | None = None
    current_password: str | None = None


async def register(identity: Identity, *, email: str, password: str, display_name: str) -> User:
    now = identity.clock()
    user = User(
        id=str(uuid.uuid4()),
        email=normalize_email(email),
        display_name=clean_display_name(display_name),
        role=CLINICIAN,
        active=True,
        password_hash=await identity.passwords.hash(password),
        created_at=now,
        updated_at=now,
    )
    async with identity.unit_of_work() as uow:
        await uow.users.add(user)
        await uow.commit()
    return user


async def login(identity: Identity, *, email: str, password: str) -> IssuedTokens:
    email = normalize_email(email)
    if await identity.throttle.is_blocked(email):
        raise LoginThrottled()
    async with identity.unit_of_work() as uow:
        user = await uow.users.get_by_email(email)
    # Hashing takes tens of milliseconds: no database connection is held meanwhile.
    stored_hash = user.password_hash if user is not None and user.active else None
    if not await identity.passwords.verify(stored_hash, password) or user is None:
        await identity.throttle.record_failure(email)
        raise InvalidCredentials()
    async with identity.unit_of_work() as uow:
        session_end = identity.sessions.session_end(identity.clock())
        tokens = await _issue(
            identity, uow, user, family_id=str(uuid.uuid4()), session_end=session_end
        )
        await uow.commit()
    return tokens


async def refresh(identity: Identity, *, refresh_token: str) -> IssuedTokens:
    now = identity.clock()
    async with identity.unit_of_work() as uow:
        stored = await uow.refresh_tokens.get_for_update(_hash(refresh_token))
        # expires_at is the sooner of the idle timeout and the session's absolute end.
        if stored is None or stored.revoked_at is not None or stored.expires_at <= now:
            raise RefreshTokenInvalid()
        if stored.rotated_at is not None:
            # A rotated token came back: it was stolen or replayed. Kill the session.
            await uow.refresh_tokens.revoke_family(stored.family_id, now)
            await uow.commit()
            await identity.revocations.revoke_sessions([stored.family_id])
            raise RefreshTokenReused()
        user = await uow.users.get(stored.user_id)
        if user is None or not user.active:
            raise RefreshTokenInvalid()
        await uow.refresh_tokens.mark_rotated(stored.id, now)
        # Rotation renews the idle timeout, never the session's absolute end.
        tokens = await _issue(
            identity, uow, user, family_id=stored.family_id,
            session_end=stored.session_expires_at,
        )  # fmt: skip
        await uow.commit()
    return tokens


async def logout(identity: Identity, *, refresh_token: str) -> None:
    """Ends the session the token belongs to; unknown tokens are ignored (idempotent)."""
    async with identity.unit_of_work() as uow:
        stored = await uow.refresh_tokens.get_for_update(_hash(refresh_token))
        if stored is None:
            return
        await uow.refresh_tokens.revoke_family(stored.family_id, identity.clock())
        await uow.commit()
    await identity.revocations.revoke_sessions([stored.family_id])


async def get_me(identity: Identity, principal: Principal) -> User:
    return _active(await identity.accounts.get(principal.user_id))


async def update_me(identity: Identity, principal: Principal, changes: ProfileChanges) -> User:
    now = identity.clock()
    async with identity.unit_of_work() as uow:
        user = await _active_caller(uow, principal)
        if changes.display_name is not None:
            user = user.changed(now, display_name=clean_display_name(changes.display_name))
        if changes.password is not None:
            if not await identity.passwords.verify(
                user.password_hash, changes.current_password or ""
            ):
                raise WrongCurrentPassword()
            new_hash = await identity.passwords.hash(changes.password)
            user = user.changed(now, password_hash=new_hash)
            # A new password signs out every other session; this one stays.
            revoked = await uow.refresh_tokens.revoke_user_families(
                user.id, now, keep_family=principal.session_id
            )
        else:
            revoked = []
        await uow.users.save(user)
        await uow.commit()
    await identity.revocations.revoke_sessions(revoked)
    return user


async def list_users(
    identity: Identity, principal: Principal, *, page_size: int, page_token: str, role: str
) -> Page[User]:
    limit = resolve_page_size(page_size)
    scope = f"users:role={role}"
    after = None
    if page_token:
        created_at, user_id = identity.page_tokens.decode(scope, page_token)
        after = (datetime.fromisoformat(str(created_at)), str(user_id))
    async with identity.unit_of_work() as uow:
        await _admin_caller(uow, principal)
        users = await uow.users.list_page(limit=limit + 1, after=after, role=role or None)
    next_token = ""
    if len(users) > limit:
        users = users[:limit]
        last = users[-1]
        next_token = identity.page_tokens.encode(scope, [last.created_at.isoformat(), last.id])
    return Page(items=users, next_page_token=next_token)


async def get_user(identity: Identity, principal: Principal, user_id: str) -> User:
    async with identity.unit_of_work().autocommit() as uow:
        caller = await _active_caller(uow, principal)
        if caller.id == user_id:
            return caller
        # Non-admins cannot tell whether another account exists.
        if not caller.is_admin:
            raise UserNotFound()
        return await _existing_user(uow, user_id)


async def set_role(identity: Identity, principal: Principal, user_id: str, role: str) -> User:
    # Access tokens carry the role, so a change ends the user's sessions: they sign in
    # again and get tokens with the new role.
    return await _administer(
        identity, principal, user_id,
        lambda user, now: user if user.role == role else user.changed(now, role=role),
    )  # fmt: skip


async def deactivate(identity: Identity, principal: Principal, user_id: str) -> User:
    return await _administer(
        identity, principal, user_id,
        lambda user, now: user.changed(now, active=False) if user.active else user,
    )  # fmt: skip


async def _administer(
    identity: Identity,
    principal: Principal,
    user_id: str,
    change: Callable[[User, datetime], User],
) -> User:
    """An admin changes another account; any change ends that account's sessions."""
    now = identity.clock()
    async with identity.unit_of_work() as uow:
        caller = await _admin_caller(uow, principal)
        if caller.id == user_id:
            raise OwnAccountProtected()
        user = await _existing_user(uow, user_id)
        changed = change(user, now)
        if changed == user:
            return user
        await uow.users.save(changed)
        revoked = await uow.refresh_tokens.revoke_user_families(user_id, now)
        await uow.commit()
    await identity.revocations.revoke_sessions(revoked)
    return changed


async def get_jwks(unit_of_work: Callable[[], UserUnitOfWork]) -> bytes:
    async with unit_of_work().autocommit() as uow:
        return jwks_document(await uow.signing_keys.published())


async def ensure_signing_key(
    unit_of_work: Callable[[], UserUnitOfWork], passphrase: bytes, now: datetime
) -> SigningKey:
    """The newest published key, created on first start (safe with concurrent replicas)."""
    async with unit_of_work() as uow:
        await uow.signing_keys.lock()
        keys = await uow.signing_keys.published()
        if keys:
            return keys[0]
        key = new_signing_key(passphrase, now)
        await uow.signing_keys.add(key)
        await uow.commit()
        return key


async def ensure_admin(identity: Identity, *, email: str, password: str) -> None:
    """The configured admin exists, is active and is an admin (its password is kept)."""
    email = normalize_email(email)
    now = identity.clock()
    async with identity.unit_of_work() as uow:
        user = await uow.users.get_by_email(email)
        if user is None:
            user = User(
                id=str(uuid.uuid4()),
                email=email,
                display_name="Administrator",
                role=ADMIN,
                active=True,
                password_hash=await identity.passwords.hash(password),
                created_at=now,
                updated_at=now,
            )
            await uow.users.add(user)
        elif user.role != ADMIN or not user.active:
            await uow.users.save(user.changed(now, role=ADMIN, active=True))
        await uow.commit()


async def _issue(
    identity: Identity,
    uow: UserUnitOfWork,
    user: User,
    *,
    family_id: str,
    session_end: datetime,
) -> IssuedTokens:
    now = identity.clock()
    plain = secrets.token_urlsafe(32)
    await uow.refresh_tokens.add(
        RefreshToken(
            id=str(uuid.uuid4()),
            family_id=family_id,
            user_id=user.id,
            token_hash=_hash(plain),
            created_at=now,
            expires_at=identity.sessions.link_end(now, session_end),
            session_expires_at=session_end,
        )
    )
    access = identity.minter.mint(user, family_id, now)
    return IssuedTokens(
        access_token=access,
        refresh_token=plain,
        expires_in=int(identity.minter.ttl.total_seconds()),
    )


async def _active_caller(uow: UserUnitOfWork, principal: Principal) -> User:
    """The caller's own account, re-read: a deactivated account is refused at once."""
    return _active(await uow.users.get(principal.user_id))


def _active(user: User | None) -> User:
    if user is None or not user.active:
        raise AccountInactive()
    return user


async def _admin_caller(uow: UserUnitOfWork, principal: Principal) -> User:
    caller = await _active_caller(uow, principal)
    if not caller.is_admin:  # the database's role, not the token's: demotion is immediate
        raise AdminRequired()
    return caller


async def _existing_user(uow: UserUnitOfWork, user_id: str) -> User:
    user = await uow.users.get(user_id)
    if user is None:
        raise UserNotFound()
    return user


def _hash(refresh_token: str) -> bytes:
    return hashlib.sha256(refresh_token.encode()).digest()
