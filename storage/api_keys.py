"""API keys in Postgres: made once (the secret is shown then and never again), listed,
revoked, and looked up on every request by the SHA-256 of the presented secret."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.db import connection_errors
from storage.tables import ApiKeyRow

PREFIX: Final = "tw_"


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    tenant: str
    name: str
    scopes: tuple[str, ...]
    created_at: datetime
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _key(row: ApiKeyRow) -> ApiKey:
    return ApiKey(
        row.key_id, row.tenant, row.name, tuple(row.scopes), row.created_at, row.revoked_at
    )


def split_token(token: str) -> tuple[str, str] | None:
    """(key id, secret) of a presented `tw_<key id>.<secret>`, or None if it has not that shape."""
    if not token.startswith(PREFIX) or "." not in token:
        return None
    key_id, _, secret = token.removeprefix(PREFIX).partition(".")
    return (key_id, secret) if key_id and secret else None


async def create(
    engine: AsyncEngine, tenant: str, name: str, scopes: tuple[str, ...]
) -> tuple[ApiKey, str]:
    """A new key and its token, the only time the token exists in clear."""
    key_id, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
    values = {
        "key_id": key_id,
        "tenant": tenant,
        "name": name,
        "scopes": sorted(set(scopes)),
        "secret_sha256": _digest(secret),
        "created_at": datetime.now(UTC),
    }
    with connection_errors():
        async with engine.begin() as conn:
            await conn.execute(insert(ApiKeyRow).values(**values))
    return _key(ApiKeyRow(**values)), f"{PREFIX}{key_id}.{secret}"


async def listed(engine: AsyncEngine, tenant: str | None = None) -> list[ApiKey]:
    """Keys, oldest first; one tenant's when given. Never their secrets."""
    query = select(ApiKeyRow).order_by(ApiKeyRow.created_at, ApiKeyRow.key_id)
    if tenant is not None:
        query = query.where(ApiKeyRow.tenant == tenant)
    with connection_errors():
        async with engine.connect() as conn:
            rows = (await conn.execute(query)).all()
    return [_key(ApiKeyRow(**row._mapping)) for row in rows]


async def revoke(engine: AsyncEngine, key_id: str, tenant: str | None = None) -> bool:
    """Revoke a key (of `tenant` when given); False if there is no such active key."""
    query = (
        update(ApiKeyRow)
        .where(ApiKeyRow.key_id == key_id, ApiKeyRow.revoked_at.is_(None))
        .values(revoked_at=datetime.now(UTC))
    )
    if tenant is not None:
        query = query.where(ApiKeyRow.tenant == tenant)
    with connection_errors():
        async with engine.begin() as conn:
            return (await conn.execute(query)).rowcount == 1


async def authenticate(engine: AsyncEngine, token: str) -> ApiKey | None:
    """The active key the token belongs to, or None (unknown, revoked or a wrong secret)."""
    parts = split_token(token)
    if parts is None:
        return None
    key_id, secret = parts
    query = select(ApiKeyRow).where(ApiKeyRow.key_id == key_id)
    with connection_errors():
        async with engine.connect() as conn:
            found = (await conn.execute(query)).first()
    if found is None:
        return None
    key = _key(ApiKeyRow(**found._mapping))
    digest = str(found._mapping["secret_sha256"])
    if not hmac.compare_digest(digest, _digest(secret)) or not key.active:
        return None
    return key
