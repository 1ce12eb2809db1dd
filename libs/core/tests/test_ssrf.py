"""The SSRF policy with an injected resolver: every refused range, names resolving to them, allowed networks,
and a public host."""

from __future__ import annotations

import asyncio

import pytest

from pvc.core.errors import ValidationFailed
from pvc.core.ssrf import OutboundPolicy, parse_networks, resolve_target


def resolver_for(answers: dict[str, list[str]]):  # type: ignore[no-untyped-def]
    async def resolve(host: str, port: int) -> list[str]:
        if host not in answers:
            raise OSError(f"unknown host {host}")
        return answers[host]

    return resolve


REFUSED = [
    ("127.0.0.1", "loopback"),
    ("127.8.9.10", "loopback"),
    ("[::1]", "loopback"),
    ("0.0.0.0", "unspecified"),
    ("10.1.2.3", "private"),
    ("172.16.0.1", "private"),
    ("192.168.1.1", "private"),
    ("[fd00::1]", "private"),
    ("169.254.169.254", "link-local"),
    ("[fe80::1]", "link-local"),
    ("100.64.0.1", "carrier-grade NAT"),
    ("100.127.255.254", "carrier-grade NAT"),
    ("224.0.0.1", "multicast"),
    ("[ff02::1]", "multicast"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "reserved"),
    ("192.0.2.10", "private"),  # documentation range
    ("[::ffff:127.0.0.1]", "loopback"),
    ("[::ffff:10.0.0.1]", "private"),
    ("[::ffff:169.254.169.254]", "link-local"),
    ("[::ffff:100.64.1.1]", "carrier-grade NAT"),
    ("[64:ff9b::a00:1]", "private"),  # NAT64 of 10.0.0.1
    ("[2002:a00:1::1]", "private"),  # 6to4 of 10.0.0.1
]


@pytest.mark.parametrize(("host", "reason"), REFUSED)
async def test_refused_addresses(host: str, reason: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        await resolve_target(f"http://{host}:8080/hook", resolver=resolver_for({}), allow_private=False)
    assert reason in caught.value.message
    assert caught.value.message.startswith("url ")
    assert caught.value.details == {"fields": {"url": caught.value.message.removeprefix("url ")}}


async def test_a_name_resolving_to_a_private_address_is_refused() -> None:
    resolver = resolver_for({"internal.example.com": ["10.0.0.7"]})
    with pytest.raises(ValidationFailed, match="private"):
        await resolve_target("https://internal.example.com/hook", resolver=resolver, allow_private=False)


async def test_one_private_answer_among_public_ones_is_refused() -> None:
    resolver = resolver_for({"mixed.example.com": ["93.184.216.34", "127.0.0.1"]})
    with pytest.raises(ValidationFailed, match="loopback"):
        await resolve_target("https://mixed.example.com/hook", resolver=resolver, allow_private=False)


async def test_a_public_name_is_allowed_and_pinned_to_the_checked_address() -> None:
    resolver = resolver_for({"hooks.example.com": ["93.184.216.34"]})
    target = await resolve_target("https://hooks.example.com/in?x=1", resolver=resolver, allow_private=False)
    assert target.ip == "93.184.216.34"
    assert target.pinned_url == "https://93.184.216.34:443/in?x=1"
    assert target.host_header == "hooks.example.com"
    assert target.host == "hooks.example.com"


async def test_public_ipv6_literal_is_allowed() -> None:
    target = await resolve_target(
        "http://[2606:2800:220:1::1]:8080/", resolver=resolver_for({}), allow_private=False
    )
    assert target.pinned_url == "http://[2606:2800:220:1::1]:8080/"


async def test_allow_private_lets_loopback_through() -> None:
    resolver = resolver_for({"localhost": ["127.0.0.1"]})
    target = await resolve_target("http://localhost:9000/x", resolver=resolver, allow_private=True)
    assert target.ip == "127.0.0.1"
    assert target.host_header == "localhost:9000"


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/",
        "file:///etc/passwd",
        "http://user:pass@example.com/",
        "http:///nohost",
        "http://example.com:99999/",
        "http://exa mple.com/",
        "http://example.com/" + "a" * 2100,
        "http://unknown.example.com/",
    ],
)
async def test_malformed_or_unresolvable_urls_are_refused(url: str) -> None:
    with pytest.raises(ValidationFailed):
        await resolve_target(url, resolver=resolver_for({}), allow_private=True)


async def test_allowed_networks_let_only_those_addresses_through() -> None:
    resolver = resolver_for({"runner.internal": ["10.20.3.4"], "meta.internal": ["169.254.169.254"]})
    policy = OutboundPolicy(allowed_networks=parse_networks("10.20.0.0/16, ::1/128"), resolver=resolver)
    assert (await policy.check("http://runner.internal:8000/evaluate")).ip == "10.20.3.4"
    assert (await policy.check("http://[::1]:8000/")).ip == "::1"
    assert (await policy.check("http://[::ffff:10.20.9.9]/")).ip == "::ffff:a14:909"
    for url in ("http://10.21.0.1/", "http://meta.internal/latest", "http://127.0.0.1/"):
        with pytest.raises(ValidationFailed):
            await policy.check(url)


async def test_a_name_that_does_not_resolve_in_time_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("pvc.core.ssrf.RESOLVE_TIMEOUT_SECONDS", 0.05)

    async def stuck(host: str, port: int) -> list[str]:
        await asyncio.sleep(10)
        return []

    with pytest.raises(ValidationFailed, match="did not resolve within"):
        await OutboundPolicy(resolver=stuck).check("https://slow.example.com/")


def test_parse_networks() -> None:
    assert parse_networks("") == ()
    assert [str(n) for n in parse_networks(" 10.0.0.0/8 ,fd00::/8,192.168.1.7")] == [
        "10.0.0.0/8",
        "fd00::/8",
        "192.168.1.7/32",
    ]
    with pytest.raises(ValueError, match="does not appear"):
        parse_networks("10.0.0.0/8,not-a-network")
