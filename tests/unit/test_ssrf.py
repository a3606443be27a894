"""The SSRF guard of webhook URLs (streams.webhooks.check_target), RELIABILITY S2.

A fake resolver stands in for DNS, so that names can resolve to anything (and change, as
in DNS rebinding); numeric forms are also checked with the real system resolver.
"""

from __future__ import annotations

import socket
from collections.abc import Callable

import pytest

from streams.webhooks import (
    ResolvedTarget,
    UnresolvableTarget,
    UnsafeTarget,
    check_target,
    system_resolve,
)

pytestmark = pytest.mark.unit

PUBLIC = "93.184.215.14"


def dns(table: dict[str, list[str]]) -> Callable[[str, int], list[str]]:
    def resolve(host: str, port: int) -> list[str]:
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return table[host]

    return resolve


PUBLIC_DNS = dns({"hooks.example.com": [PUBLIC]})


def refused(url: str, resolve: Callable[[str, int], list[str]] = PUBLIC_DNS, **kw: object) -> str:
    with pytest.raises(UnsafeTarget) as caught:
        check_target(url, resolve=resolve, **kw)  # type: ignore[arg-type]
    return caught.value.reason


def test_a_public_https_target_passes_with_the_address_to_connect_to() -> None:
    target = check_target("https://hooks.example.com/tw?x=1", resolve=PUBLIC_DNS)
    assert isinstance(target, ResolvedTarget)
    assert target.ip == PUBLIC
    assert target.host == "hooks.example.com"
    assert target.host_header == "hooks.example.com"
    assert str(target.connect_url) == f"https://{PUBLIC}/tw?x=1"
    port = check_target("http://hooks.example.com:8443/", resolve=PUBLIC_DNS)
    assert port.host_header == "hooks.example.com:8443"
    assert check_target(f"http://{PUBLIC}/", resolve=dns({})).ip == PUBLIC  # no DNS needed


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("file:///etc/passwd", "scheme"),
        ("gopher://hooks.example.com/", "scheme"),
        ("ftp://hooks.example.com/", "scheme"),
        ("dict://hooks.example.com:11211/", "scheme"),
        ("hooks.example.com/path", "scheme"),
        ("http://user@hooks.example.com/", "user info"),
        ("http://user:pass@hooks.example.com/", "user info"),
        ("http://hooks.example.com:1@127.0.0.1/", "user info"),
        ("http://127.0.0.1/", "loopback"),
        ("http://127.8.9.10:8080/", "loopback"),
        ("http://[::1]/", "loopback"),
        ("http://0.0.0.0/", "unspecified"),
        ("http://[::]/", "unspecified"),
        ("http://10.0.0.1/", "private"),
        ("http://172.16.5.4/", "private"),
        ("http://172.31.255.255/", "private"),
        ("http://192.168.1.1/", "private"),
        ("http://[fc00::1]/", "private"),
        ("http://[fd12:3456::1]/", "private"),
        ("http://169.254.169.254/latest/meta-data/", "metadata"),
        ("http://169.254.1.1/", "link-local"),
        ("http://[fe80::1]/", "link-local"),
        ("http://100.64.0.1/", "shared"),
        ("http://224.0.0.1/", "multicast"),
        ("http://[ff02::1]/", "multicast"),
        ("http://240.0.0.1/", "reserved"),
        ("http://255.255.255.255/", "reserved"),
        ("http://[::ffff:127.0.0.1]/", "IPv6 form of 127.0.0.1"),
        ("http://[::ffff:10.0.0.1]/", "IPv6 form of 10.0.0.1"),
        ("http://[::ffff:169.254.169.254]/", "IPv6 form of 169.254.169.254"),
        ("http://[2002:7f00:1::]/", "IPv6 form of 127.0.0.1"),  # 6to4 around loopback
        ("http://[64:ff9b::7f00:1]/", "reserved"),  # NAT64 around loopback
        ("http://2130706433/", "non-canonical"),
        ("http://0x7f000001/", "non-canonical"),
        ("http://127.1/", "non-canonical"),
        ("http://0177.0.0.1/", "IPv4"),  # httpx itself refuses leading zeros
        ("http://017700000001/", "non-canonical"),
        ("http://localhost/", "localhost"),
        ("http://LOCALHOST./", "localhost"),
        ("http://api.localhost/", "localhost"),
    ],
)
def test_internal_and_odd_targets_are_refused(url: str, why: str) -> None:
    assert why in refused(url)


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "10.1.2.3", "192.168.0.10", "169.254.169.254", "::1", "fd00::5",
             "::ffff:127.0.0.1", "100.100.100.100"],
)  # fmt: skip
def test_names_resolving_inside_are_refused(host: str) -> None:
    reason = refused("https://hooks.example.com/", dns({"hooks.example.com": [host]}))
    assert "resolves to" in reason


def test_one_private_address_among_public_ones_is_enough_to_refuse() -> None:
    mixed = dns({"hooks.example.com": [PUBLIC, "10.0.0.7"]})
    assert "10.0.0.7" in refused("https://hooks.example.com/", mixed)


def test_a_name_that_does_not_resolve_is_refused_as_unresolvable() -> None:
    with pytest.raises(UnresolvableTarget, match="does not resolve"):
        check_target("https://nowhere.example.com/", resolve=PUBLIC_DNS)
    with pytest.raises(UnresolvableTarget):
        check_target("https://empty.example.com/", resolve=dns({"empty.example.com": []}))


def test_dns_rebinding_is_caught_by_the_check_at_delivery() -> None:
    """Public when registered, private when delivered: the second check refuses."""
    answers = iter([[PUBLIC], ["127.0.0.1"]])

    def rebinding(host: str, port: int) -> list[str]:
        return next(answers)

    registered = check_target("https://hooks.example.com/", resolve=rebinding)
    assert registered.ip == PUBLIC
    assert "127.0.0.1" in refused("https://hooks.example.com/", rebinding)


@pytest.mark.parametrize("host", ["2130706433", "0x7f000001", "127.1", "017700000001"])
def test_the_system_resolver_reads_numeric_forms_as_loopback_and_they_are_refused(
    host: str,
) -> None:
    assert system_resolve(host, 80) == ["127.0.0.1"]  # why these forms are dangerous
    assert "means 127.0.0.1" in refused(f"http://{host}/", system_resolve)


def test_the_system_resolver_path_refuses_localhost_and_loopback() -> None:
    assert "localhost" in refused("http://localhost:8080/", system_resolve)
    assert "loopback" in refused("http://127.0.0.1:8080/", system_resolve)


def test_an_allowed_entry_exempts_exactly_that_host_and_port() -> None:
    allowed = ["127.0.0.1:9999", "[::1]:9998", "hooks.internal:80"]
    internal = dns({"hooks.internal": ["10.0.0.9"], "localhost": ["127.0.0.1"]})
    assert check_target("http://127.0.0.1:9999/hook", allowed, internal).ip == "127.0.0.1"
    assert check_target("http://[::1]:9998/", allowed, internal).ip == "::1"
    assert check_target("http://hooks.internal/", allowed, internal).ip == "10.0.0.9"
    assert "loopback" in refused("http://127.0.0.1:9998/", internal, allowed=allowed)
    assert "loopback" in refused("http://127.0.0.1/", internal, allowed=allowed)
    assert "localhost" in refused("http://localhost:9999/", internal, allowed=allowed)
    assert "private" in refused("http://hooks.internal:81/", internal, allowed=allowed)
    # The exemption is about addresses only: scheme and user info rules still hold.
    assert "user info" in refused("http://u@127.0.0.1:9999/", internal, allowed=allowed)
    assert "scheme" in refused("ftp://127.0.0.1:9999/", internal, allowed=allowed)
