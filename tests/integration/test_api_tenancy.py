"""S3: one tenant's key on another tenant's subscriptions, alerts, feedback, keys and
models; revoked keys. 0 rows leak, only 401/403/404 come back, and secrets are shown once."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from storage import alerts as alert_store
from storage import messages
from tests.integration.api_harness import ApiServer, new_tenant
from tests.integration.storage_fixtures import alert, scored
from tonewatch.config import Settings

pytestmark = pytest.mark.integration

EVERY_SCOPE = ("read", "subscribe", "label", "admin")


@pytest.mark.reliability("S3")
async def test_a_tenant_sees_and_touches_nothing_of_another(
    api: ApiServer, settings: Settings, engine: AsyncEngine
) -> None:
    a = new_tenant(settings, owner=EVERY_SCOPE, spare=("read",))
    b = new_tenant(settings, intruder=EVERY_SCOPE)
    await alert_store.record(engine, [alert(a.name, n) for n in range(3)])
    await messages.record(engine, [scored(a.name, f"m{n}", offset=n) for n in range(3)])
    headers_a = {"Authorization": f"Bearer {a['owner']}"}
    headers_b = {"Authorization": f"Bearer {b['intruder']}"}
    async with (
        httpx.AsyncClient(base_url=api.url, headers=headers_a) as owner,
        httpx.AsyncClient(base_url=api.url, headers=headers_b) as intruder,
    ):
        made = await owner.post(
            "/v1/subscriptions", json={"name": "acme", "channel": "sse", "entities": ["acme"]}
        )
        assert made.status_code == 201, made.text
        sub = made.json()["id"]
        feedback = await owner.post(
            "/v1/feedback", json={"message_id": "m0", "source": "news", "correct": True}
        )
        assert feedback.status_code == 201, feedback.text
        keys = {k["name"]: k["key_id"] for k in (await owner.get("/v1/keys")).json()}

        # Every object of A, addressed by B: 404, never 200 and never 500.
        for method, path, body in [
            ("GET", f"/v1/subscriptions/{sub}", None),
            ("PATCH", f"/v1/subscriptions/{sub}", {"name": "mine now"}),
            ("DELETE", f"/v1/subscriptions/{sub}", None),
            ("POST", f"/v1/subscriptions/{sub}/rotate-secret", None),
            ("GET", f"/v1/subscriptions/{sub}/deliveries", None),
            ("GET", f"/v1/alerts/stream?subscription={sub}", None),
            ("POST", "/v1/feedback", {"message_id": "m1", "source": "news", "correct": True}),
            ("POST", "/v1/labeling/gold",
             [{"message_id": "m1", "source": "news", "sentiment": "positive"}]),
            ("DELETE", f"/v1/keys/{keys['spare']}", None),
        ]:  # fmt: skip
            response = await intruder.request(method, path, json=body)
            assert response.status_code == 404, (method, path, response.status_code)

        # Lists and searches of B hold nothing of A.
        assert (await intruder.get("/v1/subscriptions")).json() == []
        assert (await intruder.get("/v1/alerts")).json()["items"] == []
        assert (await intruder.get("/v1/feedback")).json() == []
        assert (await intruder.get("/v1/labelers")).json() == []
        assert (await intruder.get("/v1/labeling/queue")).json() == []
        assert {k["name"] for k in (await intruder.get("/v1/keys")).json()} == {"intruder"}
        timeline = await intruder.get("/v1/entities/acme/timeline", params={"source": "news"})
        assert timeline.json()["buckets"] == []
        assert timeline.json()["alerts"] == []
        # Models are shared (one served model), and say nothing about tenants.
        assert (await intruder.get("/v1/models")).status_code == 200

        # A's objects are intact after all that.
        assert (await owner.get(f"/v1/subscriptions/{sub}")).json()["name"] == "acme"
        assert len((await owner.get("/v1/alerts")).json()["items"]) == 3
        assert (await owner.get("/v1/me")).json()["tenant"] == a.name


@pytest.mark.reliability("S3")
async def test_secrets_are_shown_once_and_revoked_keys_fail_everywhere(
    api: ApiServer, settings: Settings
) -> None:
    a = new_tenant(settings, owner=EVERY_SCOPE, leaver=EVERY_SCOPE)
    with api.client(a["owner"]) as owner, api.client(a["leaver"]) as leaver:
        made = owner.post(
            "/v1/subscriptions",
            json={"name": "hook", "channel": "webhook", "url": "http://127.0.0.1:9/"},
        )
        # Only the allowed receiver port passes the SSRF guard; port 9 is not it.
        assert made.status_code == 422
        made = owner.post("/v1/subscriptions", json={"name": "sse", "channel": "sse"})
        sub = made.json()["id"]
        secrets = [token.split(".")[1] for token in a.tokens.values()]
        for path in ("/v1/subscriptions", f"/v1/subscriptions/{sub}", "/v1/keys"):
            listed = owner.get(path).text
            assert "whsec_" not in listed
            assert not [s for s in secrets if s in listed]
        leaver_id = next(k["key_id"] for k in owner.get("/v1/keys").json() if k["name"] == "leaver")
        assert leaver.get("/v1/me").status_code == 200
        assert owner.delete(f"/v1/keys/{leaver_id}").status_code == 204
        for method, path in [
            ("GET", "/v1/me"), ("GET", "/v1/alerts"), ("GET", "/v1/subscriptions"),
            ("GET", f"/v1/subscriptions/{sub}"), ("GET", "/v1/labeling/queue"),
            ("GET", "/v1/keys"), ("GET", "/v1/models"), ("GET", "/v1/alerts/stream"),
        ]:  # fmt: skip
            assert leaver.request(method, path).status_code == 401, path
        assert leaver.post("/v1/session", json={"api_key": a["leaver"]}).status_code == 401
