"""S4 and B2 at the API: hostile JSON and oversized bodies get a 4xx, never a 500, and the
API's memory stays bounded. Every case goes to a real route through the real server."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from tests.integration.api_harness import ApiServer, new_tenant
from tonewatch.bench.stats import peak_rss_mb
from tonewatch.config import Settings

pytestmark = pytest.mark.integration

LIMIT = Settings().api_max_body_bytes


JSON = "application/json"
HOSTILE: dict[str, tuple[bytes, str, set[int]]] = {
    "duplicate keys": (b'{"name": "a", "name": "b", "scopes": ["read"]}', JSON, {400}),
    "10k-deep nesting": (b"[" * 10_000 + b"]" * 10_000, JSON, {400}),
    "deep nesting inside a field": (
        b'{"name": "a", "scopes": ' + b"[" * 5000 + b"]" * 5000 + b"}", JSON, {400}
    ),
    "huge integer": (b'{"name": 1' + b"0" * 5000 + b', "scopes": ["read"]}', JSON, {400}),
    "huge float": (b'{"name": 1e999999, "scopes": ["read"]}', JSON, {400, 422}),
    "NaN": (b'{"name": NaN, "scopes": ["read"]}', JSON, {400}),
    "half a million elements": (
        b'{"name": "a", "scopes": [' + b",".join([b'"read"'] * 140_000) + b"]}",
        JSON, {422},
    ),
    "million-element array (over the size limit)": (
        b"[" + b",".join([b"0"] * 1_000_000) + b"]", JSON, {413}
    ),
    "wrong content type": (b'{"name": "a", "scopes": ["read"]}', "text/plain", {415}),
    "form body": (b"name=a&scopes=read", "application/x-www-form-urlencoded", {415}),
    "invalid UTF-8": (b'{"name": "\xff\xfe", "scopes": ["read"]}', JSON, {400}),
    "lone surrogate escape": (b'{"name": "\\ud800", "scopes": ["read"]}', JSON, {400}),
    "truncated": (b'{"name": "a", "scopes": ["re', JSON, {400}),
    "top-level string": (b'"just a string"', JSON, {422}),
    "null": (b"null", JSON, {422}),
    "unknown field": (b'{"name": "a", "scopes": ["read"], "admin": true}', JSON, {422}),
    "wrong types": (b'{"name": ["a"], "scopes": "read"}', JSON, {422}),
    "binary": (bytes(range(256)) * 4, JSON, {400}),
}  # fmt: skip


@pytest.fixture(scope="module")
def admin_token(settings: Settings) -> str:
    return new_tenant(settings, admin=("admin",))["admin"]


@pytest.mark.parametrize("case", sorted(HOSTILE))
@pytest.mark.reliability("S4")
def test_hostile_json_gets_a_4xx(api: ApiServer, admin_token: str, case: str) -> None:
    body, content_type, expected = HOSTILE[case]
    with api.client(admin_token) as client:
        response = client.post("/v1/keys", content=body, headers={"Content-Type": content_type})
    assert response.status_code in expected, (case, response.status_code, response.text[:300])
    assert response.headers["content-type"].startswith("application/json")
    assert "Traceback" not in response.text
    assert len(response.content) < 10_000  # errors are summarised, not echoed


def _chunked_post(api: ApiServer, token: str, chunks: Iterator[bytes]) -> tuple[int, bytes]:
    """A raw HTTP/1.1 POST with Transfer-Encoding: chunked and no Content-Length."""
    host, port = api.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as conn:
        conn.sendall(
            b"POST /v1/keys HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Authorization: Bearer {token}\r\n".encode()
            + b"Transfer-Encoding: chunked\r\n\r\n"
        )
        try:
            for chunk in chunks:
                conn.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            conn.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed early: read what it said
        reply = b""
        while data := conn.recv(65536):
            reply += data
            if b"\r\n\r\n" in reply and b'"}' in reply:
                break
    status = int(reply.split(b" ", 2)[1])
    return status, reply


@pytest.mark.reliability("B2", "S4")
def test_oversized_bodies_get_413_chunked_or_not(api: ApiServer, admin_token: str) -> None:
    before = peak_rss_mb([api.process.pid])
    assert before is not None, "no VmHWM"
    with api.client(admin_token) as client:
        for size in (64 * 1024, LIMIT + 1, 10 * 1024 * 1024):
            body = b'{"name": "' + b"x" * size + b'", "scopes": ["read"]}'
            response = client.post(
                "/v1/keys", content=body, headers={"Content-Type": "application/json"}
            )
            expected = 422 if size < LIMIT else 413  # 64 KB fits, but the name is too long
            assert response.status_code == expected, (size, response.text[:200])
    # 10 MB streamed in chunks with no Content-Length: cut off at the limit.
    status, reply = _chunked_post(api, admin_token, (b"x" * 65536 for _ in range(160)))
    assert status == 413, reply[:300]
    after = peak_rss_mb([api.process.pid])
    assert after is not None
    assert after - before < 100  # nothing near 10 MB x copies was held
    with api.client() as client:
        assert client.get("/healthz").status_code == 200  # and the server is fine
