"""API keys of the caller's tenant (admin scope), and the web pages' session cookie."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, HTTPException, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from storage import api_keys
from tonewatch.api.auth import COOKIE, SCOPES, Admin, Scope, authenticate, presented_token
from tonewatch.api.state import api_state

router = APIRouter(prefix="/v1", tags=["keys"])


class KeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100, description="Who holds the key.")
    scopes: list[Scope] = Field(min_length=1, max_length=len(SCOPES))


class KeyOut(BaseModel):
    key_id: str
    tenant: str
    name: str
    scopes: list[str]
    created_at: datetime
    revoked_at: datetime | None

    @classmethod
    def of(cls, key: api_keys.ApiKey) -> KeyOut:
        return cls(
            key_id=key.key_id, tenant=key.tenant, name=key.name, scopes=list(key.scopes),
            created_at=key.created_at, revoked_at=key.revoked_at,
        )  # fmt: skip


class NewKey(KeyOut):
    token: str = Field(description="The secret; shown this once, never again.")


class SessionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    api_key: str = Field(min_length=1, max_length=200)


@router.post("/keys", status_code=201)
async def create_key(body: KeyIn, caller: Admin, request: Request) -> NewKey:
    key, token = await api_keys.create(
        api_state(request).engine, caller.tenant, body.name, tuple(body.scopes)
    )
    return NewKey(**KeyOut.of(key).model_dump(), token=token)


@router.get("/keys")
async def list_keys(caller: Admin, request: Request) -> list[KeyOut]:
    return [KeyOut.of(k) for k in await api_keys.listed(api_state(request).engine, caller.tenant)]


@router.delete("/keys/{key_id}", status_code=204)
async def revoke_key(key_id: str, caller: Admin, request: Request) -> Response:
    if not await api_keys.revoke(api_state(request).engine, key_id, caller.tenant):
        raise HTTPException(404, "no such active key")
    return Response(status_code=204)


@router.post("/session", status_code=204)
async def open_session(body: SessionIn, request: Request) -> Response:
    """Check a key and keep it in an HttpOnly cookie for the web pages."""
    await authenticate(api_state(request), body.api_key)
    response = Response(status_code=204)
    response.set_cookie(
        COOKIE, body.api_key, httponly=True, samesite="strict", secure=request.url.scheme == "https"
    )
    return response


@router.delete("/session", status_code=204)
async def close_session() -> Response:
    response = Response(status_code=204)
    response.delete_cookie(COOKIE)
    return response


@router.get("/me")
async def whoami(request: Request) -> dict[str, object]:
    """The caller's tenant, name and scopes (the pages use it to show who is signed in)."""
    caller = await authenticate(api_state(request), presented_token(request))
    return {"tenant": caller.tenant, "name": caller.name, "scopes": sorted(caller.scopes)}
