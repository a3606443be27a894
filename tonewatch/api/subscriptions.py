"""Subscriptions of the caller's tenant (scope `subscribe`), their webhook secrets and
deliveries.

- A webhook subscription's secret (`whsec_…`, Standard Webhooks) is returned once, by the
  POST that makes it or the rotation that replaces it; nothing else ever shows it.
- A rotation keeps the previous secret signing for TONEWATCH_WEBHOOK_SECRET_GRACE_S, so a
  receiver can switch secrets without losing or rejecting a delivery.
- Webhook URLs pass the SSRF guard (streams.webhooks.check_target) when registered or
  changed: a refused URL is a 422 that says why. The worker checks again before each
  attempt (DNS may have changed since).
- The channel is fixed at creation: a webhook needs a secret shown once, so switching
  between `sse` and `webhook` is delete and create.
- Another tenant's subscription is a 404, whatever the route.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Final, Literal

from fastapi import APIRouter, HTTPException, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from storage import deliveries, subscriptions
from streams.webhooks import UnsafeTarget, check_target, new_secret
from tonewatch.api.auth import Subscriber
from tonewatch.api.state import api_state
from tonewatch.contracts import ALERT_KINDS, SOURCES, AlertKind, Severity, Source

router = APIRouter(prefix="/v1/subscriptions", tags=["subscriptions"])

MAX_ENTITIES: Final = 50
MAX_PATTERN_CHARS: Final = 200
MAX_URL_CHARS: Final = 2000

Channel = Literal["sse", "webhook"]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
Pattern = Annotated[str, StringConstraints(min_length=1, max_length=MAX_PATTERN_CHARS)]
Url = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_URL_CHARS)
]
Sources = Annotated[list[Source], Field(max_length=len(SOURCES))]
Entities = Annotated[
    list[Pattern],
    Field(max_length=MAX_ENTITIES, description="Exact names or globs (*, ?, [...]); [] = any."),
]
Kinds = Annotated[list[AlertKind], Field(max_length=len(ALERT_KINDS))]


class SubscriptionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Name
    sources: Sources = Field(default_factory=list, description="[] matches every source.")
    entities: Entities = Field(default_factory=list)
    kinds: Kinds = Field(default_factory=list, description="[] matches every kind.")
    min_severity: Severity = "low"
    channel: Channel
    url: Url | None = Field(None, description="Where webhooks go (webhook channel only).")

    @model_validator(mode="after")
    def _url_for_webhooks_only(self) -> SubscriptionIn:
        if self.channel == "webhook" and self.url is None:
            raise ValueError("a webhook subscription needs a url")
        if self.channel == "sse" and self.url is not None:
            raise ValueError("an sse subscription takes no url")
        return self


class SubscriptionPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Name | None = None
    sources: Sources | None = None
    entities: Entities | None = None
    kinds: Kinds | None = None
    min_severity: Severity | None = None
    url: Url | None = None
    enabled: bool | None = Field(None, description="true re-enables a disabled subscription.")


class SubscriptionOut(BaseModel):
    id: str
    name: str
    sources: list[str]
    entities: list[str]
    kinds: list[str]
    min_severity: str
    channel: str
    url: str | None
    enabled: bool
    disabled_reason: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, s: subscriptions.Subscription) -> SubscriptionOut:
        return cls(
            id=s.id, name=s.name, sources=list(s.sources), entities=list(s.entities),
            kinds=list(s.kinds), min_severity=s.min_severity, channel=s.channel, url=s.url,
            enabled=s.enabled, disabled_reason=s.disabled_reason, created_at=s.created_at,
            updated_at=s.updated_at,
        )  # fmt: skip


class NewSubscription(SubscriptionOut):
    secret: str | None = Field(
        description="The webhook signing secret; shown this once, never again (null for sse)."
    )


class RotatedSecret(BaseModel):
    secret: str = Field(description="The new signing secret; shown this once.")
    previous_valid_until: datetime = Field(description="Until then the old secret signs too.")


class DeliveryOut(BaseModel):
    id: int
    event_id: str
    status: str
    attempts: int
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
    next_attempt_at: datetime

    @classmethod
    def of(cls, d: deliveries.Delivery) -> DeliveryOut:
        return cls(
            id=d.id, event_id=d.event_id, status=d.status, attempts=d.attempts,
            last_status_code=d.last_status_code, last_error=d.last_error,
            created_at=d.created_at, delivered_at=d.delivered_at,
            next_attempt_at=d.next_attempt_at,
        )  # fmt: skip


async def _checked_url(request: Request, url: str) -> str:
    """The URL if the SSRF guard lets webhooks go there; 422 with the reason if not."""
    allowed = api_state(request).settings.webhook_allowed_targets
    try:
        await asyncio.to_thread(check_target, url, allowed)
    except UnsafeTarget as exc:
        raise HTTPException(422, f"webhook url refused: {exc.reason}") from None
    return url


async def _found(request: Request, tenant: str, subscription_id: str) -> subscriptions.Subscription:
    found = await subscriptions.get(api_state(request).engine, tenant, subscription_id)
    if found is None:
        raise HTTPException(404, "no such subscription")
    return found


@router.post("", status_code=201)
async def create_subscription(
    body: SubscriptionIn, caller: Subscriber, request: Request
) -> NewSubscription:
    secret = None
    if body.channel == "webhook":
        assert body.url is not None  # the model's validator
        await _checked_url(request, body.url)
        secret = new_secret()
    made = await subscriptions.create(
        api_state(request).engine, caller.tenant, name=body.name, sources=body.sources,
        entities=body.entities, kinds=body.kinds, min_severity=body.min_severity,
        channel=body.channel, url=body.url, secret=secret,
    )  # fmt: skip
    return NewSubscription(**SubscriptionOut.of(made).model_dump(), secret=secret)


@router.get("")
async def list_subscriptions(caller: Subscriber, request: Request) -> list[SubscriptionOut]:
    found = await subscriptions.listed(api_state(request).engine, caller.tenant)
    return [SubscriptionOut.of(s) for s in found]


@router.get("/{subscription_id}")
async def get_subscription(
    subscription_id: str, caller: Subscriber, request: Request
) -> SubscriptionOut:
    return SubscriptionOut.of(await _found(request, caller.tenant, subscription_id))


@router.patch("/{subscription_id}")
async def update_subscription(
    subscription_id: str, body: SubscriptionPatch, caller: Subscriber, request: Request
) -> SubscriptionOut:
    current = await _found(request, caller.tenant, subscription_id)
    changes = body.model_dump(exclude_unset=True, exclude={"enabled"})
    if None in changes.values():
        raise HTTPException(422, "fields cannot be set to null; leave them out instead")
    if "url" in changes:
        if current.channel != "webhook":
            raise HTTPException(422, "an sse subscription takes no url")
        await _checked_url(request, changes["url"])
    updated = await subscriptions.update(
        api_state(request).engine, caller.tenant, subscription_id, changes, enabled=body.enabled
    )
    if updated is None:  # deleted meanwhile
        raise HTTPException(404, "no such subscription")
    return SubscriptionOut.of(updated)


@router.delete("/{subscription_id}", status_code=204)
async def delete_subscription(
    subscription_id: str, caller: Subscriber, request: Request
) -> Response:
    if not await subscriptions.delete(api_state(request).engine, caller.tenant, subscription_id):
        raise HTTPException(404, "no such subscription")
    return Response(status_code=204)


@router.post("/{subscription_id}/rotate-secret")
async def rotate_secret(
    subscription_id: str, caller: Subscriber, request: Request
) -> RotatedSecret:
    state = api_state(request)
    current = await _found(request, caller.tenant, subscription_id)
    if current.channel != "webhook":
        raise HTTPException(409, "only webhook subscriptions have a secret")
    secret = new_secret()
    until = await subscriptions.rotate_secret(
        state.engine, caller.tenant, subscription_id, secret, state.settings.webhook_secret_grace_s
    )
    if until is None:
        raise HTTPException(404, "no such subscription")
    return RotatedSecret(secret=secret, previous_valid_until=until)


@router.get("/{subscription_id}/deliveries")
async def list_deliveries(
    subscription_id: str,
    caller: Subscriber,
    request: Request,
    status: Annotated[deliveries.Status | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[DeliveryOut]:
    await _found(request, caller.tenant, subscription_id)
    found = await deliveries.listed(
        api_state(request).engine, caller.tenant, subscription_id, status, limit
    )
    return [DeliveryOut.of(d) for d in found]


@router.post("/{subscription_id}/deliveries/{delivery_id}/retry")
async def retry_delivery(
    subscription_id: str, delivery_id: int, caller: Subscriber, request: Request
) -> DeliveryOut:
    """Queue a dead or gone delivery again, with fresh attempts (a gone one waits until its
    subscription is enabled again)."""
    engine = api_state(request).engine
    await _found(request, caller.tenant, subscription_id)
    requeued = await deliveries.redeliver(engine, caller.tenant, subscription_id, delivery_id)
    if requeued is not None:
        return DeliveryOut.of(requeued)
    if await deliveries.get(engine, caller.tenant, subscription_id, delivery_id) is None:
        raise HTTPException(404, "no such delivery")
    raise HTTPException(409, "only dead or gone deliveries can be retried")
