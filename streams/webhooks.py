"""Signed webhooks: the event envelope, Standard Webhooks signatures, the SSRF guard and
the one HTTP attempt.

- **Event ids are per alert**: `event_id(dedup_key)` is the same for every subscription
  and every redelivery of one alert, so a receiver deduplicates on `webhook-id` alone.
- **Signatures** follow Standard Webhooks (standardwebhooks.com): HMAC-SHA256 over
  `"{id}.{timestamp}.{body}"` keyed with the base64 part of a `whsec_` secret, sent as
  `webhook-signature: v1,<base64>`. While a rotated secret is in its grace period, every
  secret signs and the header carries one `v1,<sig>` per secret, space-separated, so a
  receiver configured with either secret accepts the delivery.
- **SSRF guard** (`check_target`): a webhook URL must be http(s), carry no user info, and
  every address its host resolves to must be public. Numeric host forms other than the
  canonical dotted quad (`2130706433`, `0x7f000001`, `127.1`, octal) are refused outright,
  since parsers disagree on them. The check runs at registration and again before every
  attempt, and the attempt connects to the address that was checked (never re-resolving,
  which would let DNS rebinding swap in a private address). Redirects are never followed.
  `allowed` entries `host:port` (TONEWATCH_WEBHOOK_ALLOWED_TARGETS) exempt exactly that
  host, as written in the URL, and port from the address checks: for internal receivers
  and tests on loopback; scheme and user-info rules still apply to them.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import ipaddress
import secrets
import socket
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Final, Literal

import httpx
from pydantic import AwareDatetime, BaseModel, ConfigDict

from streams.exceptions import StreamError
from tonewatch.contracts import Alert

SECRET_PREFIX: Final = "whsec_"
SECRET_BYTES: Final = 24
SCHEMES: Final = ("http", "https")
DEFAULT_PORTS: Final = {"http": 80, "https": 443}
METADATA_ADDRESS: Final = ipaddress.ip_address("169.254.169.254")
SHARED_NETWORK: Final = ipaddress.ip_network("100.64.0.0/10")
MAX_ERROR_CHARS: Final = 500

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]


class WebhookEvent(BaseModel):
    """The JSON body of a webhook: one alert, under the event id receivers dedup on."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["alert.created"] = "alert.created"
    id: str
    created_at: AwareDatetime
    data: Alert

    @classmethod
    def of(cls, alert: Alert) -> WebhookEvent:
        # The alert's own time, not now: a re-published alert makes the same event.
        return cls(id=event_id(alert.dedup_key), created_at=alert.created_at, data=alert)


def event_id(dedup_key: str) -> str:
    """The webhook event id of an alert: stable, and the same for every subscription that
    receives it (the id depends on the alert only)."""
    return "evt_" + hashlib.sha256(dedup_key.encode()).hexdigest()[:32]


def new_secret() -> str:
    """A Standard Webhooks secret: `whsec_` and 24 random bytes in base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def sign(secret: str, event_id: str, timestamp: int, body: bytes) -> str:
    """One `v1,<base64 HMAC-SHA256>` signature of (id, timestamp, body)."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    digest = hmac.new(key, f"{event_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers(secrets: Sequence[str], event_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The Standard Webhooks headers, with a signature by each secret."""
    return {
        "content-type": "application/json",
        "webhook-id": event_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(sign(s, event_id, timestamp, body) for s in secrets),
    }


class UnsafeTarget(StreamError):
    """A webhook URL the SSRF guard refuses; `reason` says why, for the API's 422."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class UnresolvableTarget(UnsafeTarget):
    """The host does not resolve: refused at registration, retried later at delivery."""


@dataclass(frozen=True)
class ResolvedTarget:
    """A checked webhook URL and the address to connect to."""

    url: httpx.URL
    ip: str

    @property
    def host(self) -> str:
        return self.url.raw_host.decode("ascii")

    @property
    def host_header(self) -> str:
        """The Host header of the URL as written (the receiver's virtual host)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.url.port is None else f"{host}:{self.url.port}"

    @property
    def connect_url(self) -> httpx.URL:
        return self.url.copy_with(host=self.ip)


def system_resolve(host: str, port: int) -> list[str]:
    """Every address the system resolver gives for host (blocking: call it in a thread)."""
    infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    return [str(info[4][0]).partition("%")[0] for info in infos]


def check_target(
    url: str, allowed: Collection[str] = (), resolve: Resolver = system_resolve
) -> ResolvedTarget:
    """The URL if a webhook may go there, with the address to connect to; else UnsafeTarget.

    Blocking when `resolve` is (the system resolver): run it in a thread from async code.
    """
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise UnsafeTarget(f"not a valid URL ({exc})") from None
    if parsed.scheme not in SCHEMES:
        raise UnsafeTarget(f"scheme {parsed.scheme or '(none)'!r} is not http or https")
    if parsed.userinfo:
        raise UnsafeTarget("user info (user:password@) is not allowed in a webhook URL")
    host = parsed.raw_host.decode("ascii").lower()
    if not host:
        raise UnsafeTarget("the URL has no host")
    port = parsed.port or DEFAULT_PORTS[parsed.scheme]
    exempt = f"{host}:{port}" in {_normalise_allowed(entry) for entry in allowed}
    literal = _ip_literal(host)
    if literal is None and not exempt:
        _refuse_name(host)
    if literal is not None:
        addresses = [literal]
    else:
        try:
            addresses = [ipaddress.ip_address(a) for a in resolve(host, port)]
        except (OSError, UnicodeError, ValueError) as exc:
            raise UnresolvableTarget(f"host {host!r} does not resolve ({exc})") from None
        if not addresses:
            raise UnresolvableTarget(f"host {host!r} does not resolve")
    if not exempt:
        for address in addresses:
            reason = unsafe_address(address)
            if reason is not None:
                shown = host if literal is not None else f"{host!r}, which resolves to {address},"
                raise UnsafeTarget(f"{shown} is {reason}")
    return ResolvedTarget(parsed, str(addresses[0]))


def unsafe_address(address: IPAddress) -> str | None:
    """Why a webhook may not connect to this address, or None for a public one."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is not None:
            reason = unsafe_address(embedded)
            return None if reason is None else f"an IPv6 form of {embedded}, {reason}"
        if address.teredo is not None:
            return "a Teredo tunnel address"
        if address.is_site_local:
            return "a site-local address"
    checks: list[tuple[bool, str]] = [
        (address.is_unspecified, "the unspecified address"),
        (address.is_loopback, "a loopback address"),
        (address == METADATA_ADDRESS, "the cloud metadata address (link-local)"),
        (address.is_link_local, "a link-local address"),
        (address in SHARED_NETWORK, "a shared (carrier-grade NAT) address"),
        (address.is_multicast, "a multicast address"),
        (address.is_reserved, "a reserved address"),
        (address.is_private, "a private address"),
        (not address.is_global, "not a public address"),
    ]
    return next((reason for unsafe, reason in checks if unsafe), None)


def _ip_literal(host: str) -> IPAddress | None:
    """The address a numeric host denotes; UnsafeTarget for non-canonical IPv4 forms."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    try:
        meant = socket.inet_aton(host)  # accepts 2130706433, 0x7f000001, 127.1, 0177.0.0.1
    except OSError:
        return None
    raise UnsafeTarget(
        f"host {host!r} is a non-canonical IP address form (it means "
        f"{ipaddress.IPv4Address(meant)}); write addresses as a.b.c.d"
    )


def _refuse_name(host: str) -> None:
    name = host.rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        raise UnsafeTarget(f"host {host!r} is a localhost name")


def _normalise_allowed(entry: str) -> str:
    host, _, port = entry.strip().lower().rpartition(":")
    return f"{host.removeprefix('[').removesuffix(']')}:{port}"


@dataclass(frozen=True)
class Outcome:
    """What one POST came to: an HTTP status, or an error before any status."""

    status_code: int | None
    error: str | None
    seconds: float

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    @property
    def gone(self) -> bool:
        return self.status_code == 410


async def post(
    client: httpx.AsyncClient,
    target: ResolvedTarget,
    headers: dict[str, str],
    body: bytes,
    timeout_s: float,
) -> Outcome:
    """POST once to the checked address: Host (and TLS SNI and certificate name) are the
    URL's, redirects are not followed, the response body is not read, and `timeout_s` bounds
    the whole exchange (a receiver trickling bytes cannot hold a worker slot)."""
    extensions = {"sni_hostname": target.host} if target.url.scheme == "https" else {}
    request = client.build_request(
        "POST",
        target.connect_url,
        content=body,
        headers={**headers, "host": target.host_header},
        extensions=extensions,
        timeout=timeout_s,
    )
    started = time.perf_counter()
    try:
        async with asyncio.timeout(timeout_s):
            response = await client.send(request, stream=True, follow_redirects=False)
            await response.aclose()
    except (httpx.HTTPError, TimeoutError) as exc:
        failure = f"{type(exc).__name__}: {exc}".strip().removesuffix(":")
        return Outcome(None, failure[:MAX_ERROR_CHARS], time.perf_counter() - started)
    code = response.status_code
    error = None if 200 <= code < 300 else f"HTTP {code} {response.reason_phrase}".strip()
    return Outcome(code, error, time.perf_counter() - started)
