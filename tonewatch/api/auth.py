"""Who is calling: API keys with scopes, scoped to one tenant, rate limited per key.

A key is sent as `Authorization: Bearer tw_…`, as `X-API-Key`, or by the web pages as the
`tw_key` cookie that `POST /v1/session` sets (HttpOnly, SameSite=Strict, so that other
sites can neither read it nor send it). `admin` implies every other scope.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Final, Literal, get_args

from fastapi import Depends, HTTPException, Request

from storage import api_keys
from storage.exceptions import CacheUnavailable
from tonewatch.api.state import ApiState, api_state

Scope = Literal["read", "subscribe", "label", "admin"]
SCOPES: Final[tuple[Scope, ...]] = get_args(Scope)
COOKIE: Final = "tw_key"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Caller:
    key_id: str
    tenant: str
    name: str  # the person or system holding the key; labels are recorded under it
    scopes: frozenset[str]

    def may(self, scope: Scope) -> bool:
        return "admin" in self.scopes or scope in self.scopes


def presented_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip() or None
    return request.headers.get("x-api-key") or request.cookies.get(COOKIE)


async def authenticate(state: ApiState, token: str | None) -> Caller:
    """The caller behind a token; 401 when there is none or it is unknown or revoked."""
    key = await api_keys.authenticate(state.engine, token) if token else None
    if key is None:
        raise HTTPException(
            401,
            "missing API key" if not token else "invalid or revoked API key",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return Caller(key.key_id, key.tenant, key.name, frozenset(key.scopes))


def require(scope: Scope) -> Callable[[Request], Awaitable[Caller]]:
    """A dependency: the authenticated caller, holding `scope`, within its rate limit."""

    async def dependency(request: Request) -> Caller:
        state = api_state(request)
        caller = await authenticate(state, presented_token(request))
        if not caller.may(scope):
            raise HTTPException(403, f"this API key lacks the {scope!r} scope")
        try:
            verdict = await state.limiter.take(caller.key_id)
        except CacheUnavailable:
            # Redis is a cache: without it we serve unlimited rather than not at all.
            log.warning("rate limiter unavailable (Redis down); request let through")
        else:
            if not verdict.allowed:
                raise HTTPException(
                    429,
                    "rate limit exceeded for this API key",
                    headers={"Retry-After": str(verdict.retry_after_s)},
                )
        request.state.caller = caller
        return caller

    return dependency


Reader = Annotated[Caller, Depends(require("read"))]
Subscriber = Annotated[Caller, Depends(require("subscribe"))]
Labeller = Annotated[Caller, Depends(require("label"))]
Admin = Annotated[Caller, Depends(require("admin"))]
