"""The API's own process: health, readiness, keys and the scopes that guard every route."""

from __future__ import annotations

import pytest

from tests.integration.api_harness import ApiServer, new_tenant
from tonewatch.config import Settings

pytestmark = pytest.mark.integration


def test_health_readiness_and_metrics(api: ApiServer) -> None:
    with api.client() as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        ready = client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json() == {
            "status": "ready", "checks": {"postgres": True, "redis": True, "kafka": True}
        }  # fmt: skip
        assert "tonewatch_api_requests_total" in client.get("/metrics").text
        assert client.get("/openapi.json").json()["info"]["title"] == "tonewatch"


def test_keys_are_created_listed_without_secrets_and_revoked(
    api: ApiServer, settings: Settings
) -> None:
    tenant = new_tenant(settings, admin=("admin",))
    with api.client(tenant["admin"]) as admin:
        made = admin.post("/v1/keys", json={"name": "bob", "scopes": ["read"]})
        assert made.status_code == 201, made.text
        token, key_id = made.json()["token"], made.json()["key_id"]
        listed = admin.get("/v1/keys").json()
        assert {k["name"] for k in listed} == {"admin", "bob"}
        assert all("token" not in k and "secret" not in str(k) for k in listed)
        with api.client(token) as bob:
            assert bob.get("/v1/me").json()["tenant"] == tenant.name
            assert bob.get("/v1/keys").status_code == 403  # read scope is not admin
            assert admin.delete(f"/v1/keys/{key_id}").status_code == 204
            assert bob.get("/v1/me").status_code == 401
        assert admin.delete(f"/v1/keys/{key_id}").status_code == 404


def test_requests_without_a_valid_key_get_401(api: ApiServer) -> None:
    with api.client() as anonymous:
        assert anonymous.get("/v1/keys").status_code == 401
    with api.client("tw_0000.not-a-key") as forged:
        response = forged.get("/v1/keys")
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
