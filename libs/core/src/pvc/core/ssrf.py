"""The SSRF policy for every URL pvc calls on a user's behalf (webhook receivers, evaluation harnesses).

A URL is resolved once and every answer checked: loopback, private, link-local (cloud metadata),
CGNAT, multicast, reserved and other non-global addresses are refused, as are IPv4-mapped, 6to4 and
NAT64 IPv6 forms of them, unless the policy allows private targets or the address is inside one of its
allowed networks. The address that was checked is the address connected to (`PinnedClient`), so a DNS
answer that changes between check and connect (rebinding) cannot redirect a request.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

import httpx

from pvc.core.errors import ValidationFailed

MAX_URL_CHARS = 2048
# A name that does not resolve within this long is refused (it would otherwise hold the request).
RESOLVE_TIMEOUT_SECONDS = 3.0
# Plain-HTTP targets share one client; each TLS host name gets its own, up to this many.
MAX_CLIENTS = 256

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
# host, port -> every address the name resolves to.
Resolver = Callable[[str, int], Awaitable[list[str]]]

CGNAT = ipaddress.ip_network("100.64.0.0/10")
NAT64 = ipaddress.ip_network("64:ff9b::/96")


async def system_resolver(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def parse_networks(spec: str) -> tuple[IPNetwork, ...]:
    """Comma-separated CIDRs (`10.1.0.0/16, fd00::/8`); raises ValueError on a malformed one."""
    return tuple(ipaddress.ip_network(part.strip(), strict=False) for part in spec.split(",") if part.strip())


def _embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address inside an IPv4-mapped, 6to4 or NAT64 IPv6 address."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    embedded = ip.ipv4_mapped or ip.sixtofour
    if embedded is None and ip in NAT64:
        embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return embedded


def refusal(ip: IPAddress) -> str | None:
    """Why `ip` may not be a target, or None when it is a public unicast address."""
    embedded = _embedded_ipv4(ip)
    if embedded is not None:
        reason = refusal(embedded)
        return f"{reason} (IPv4 embedded in IPv6)" if reason else None
    checks = (
        (ip.is_loopback, "loopback"),
        (ip.is_unspecified, "unspecified"),
        (ip.is_link_local, "link-local"),
        (ip.is_multicast, "multicast"),
        (isinstance(ip, ipaddress.IPv4Address) and ip in CGNAT, "carrier-grade NAT (100.64.0.0/10)"),
        (ip.is_reserved, "reserved"),
        (ip.is_private, "private"),
        (not ip.is_global, "not globally routable"),
    )
    return next((reason for refused, reason in checks if refused), None)


def _in_networks(ip: IPAddress, networks: Iterable[IPNetwork]) -> bool:
    candidates = [ip, *filter(None, [_embedded_ipv4(ip)])]
    return any(candidate in network for network in networks for candidate in candidates)


@dataclass(frozen=True)
class Target:
    """Where a request connects: the URL's parts plus the one checked address."""

    url: str
    scheme: str
    host: str
    port: int
    ip: str
    path: str

    @property
    def pinned_url(self) -> str:
        """The URL with the checked address in place of the host name."""
        host = f"[{self.ip}]" if ":" in self.ip else self.ip
        return f"{self.scheme}://{host}:{self.port}{self.path}"

    @property
    def host_header(self) -> str:
        default = {"http": 80, "https": 443}[self.scheme]
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"


def _invalid(message: str) -> ValidationFailed:
    return ValidationFailed(f"url {message}", details={"fields": {"url": message}})


def parse_url(url: str) -> SplitResult:
    """Shape checks that need no DNS: http(s), a host, no credentials, a sane length."""
    if len(url) > MAX_URL_CHARS:
        raise _invalid(f"must be at most {MAX_URL_CHARS} characters")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises on a malformed port)
    except ValueError as exc:
        raise _invalid(f"is not a valid URL ({exc})") from None
    if parts.scheme not in ("http", "https"):
        raise _invalid("must be an http or https URL")
    if not parts.hostname:
        raise _invalid("must name a host")
    if parts.username is not None or parts.password is not None:
        raise _invalid("must not carry credentials")
    if any(c.isspace() for c in url):
        raise _invalid("must not contain whitespace")
    return parts


async def resolve_target(
    url: str,
    *,
    resolver: Resolver,
    allow_private: bool,
    allowed_networks: Iterable[IPNetwork] = (),
) -> Target:
    """Resolve once and check every answer; raises ValidationFailed (details name `url`) when refused."""
    parts = parse_url(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        literal: IPAddress | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        answers = [str(literal)]
    else:
        try:
            answers = await asyncio.wait_for(resolver(host, port), RESOLVE_TIMEOUT_SECONDS)
        except TimeoutError:
            raise _invalid(f"host '{host}' did not resolve within {RESOLVE_TIMEOUT_SECONDS:g} s") from None
        except (OSError, UnicodeError) as exc:
            raise _invalid(f"host '{host}' does not resolve ({exc})") from None
        if not answers:
            raise _invalid(f"host '{host}' does not resolve")
    addresses = [ipaddress.ip_address(a.split("%", 1)[0]) for a in answers]
    if not allow_private:
        networks = tuple(allowed_networks)
        for ip in addresses:
            reason = None if _in_networks(ip, networks) else refusal(ip)
            if reason:
                raise _invalid(f"resolves to a {reason} address ({ip}), which pvc does not call")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Target(url=url, scheme=parts.scheme, host=host, port=port, ip=str(addresses[0]), path=path)


@dataclass(frozen=True)
class OutboundPolicy:
    """Which URLs a service may call for its users; one per process, built from its settings."""

    allow_private: bool = False
    allowed_networks: tuple[IPNetwork, ...] = ()
    resolver: Resolver = system_resolver

    async def check(self, url: str) -> Target:
        """The URL's checked target; raises ValidationFailed when the policy refuses it."""
        return await resolve_target(
            url,
            resolver=self.resolver,
            allow_private=self.allow_private,
            allowed_networks=self.allowed_networks,
        )


class PinnedClient:
    """POSTs to a checked `Target`: connects to its address, never follows redirects, ignores proxies.

    The URL's host name is kept for the Host header and for TLS (SNI and the certificate check), so the
    receiver sees the request it expects while the connection goes only where the policy looked.
    Connections are pooled by address, so a plain-HTTP connection serves any host name on it; a TLS
    connection is tied to the name it was opened for, hence one client per TLS name.
    """

    def __init__(self, *, timeout: float) -> None:
        self.timeout = timeout
        self._ssl = ssl.create_default_context()
        self._clients: dict[str, httpx.AsyncClient] = {}

    def _client(self, target: Target) -> httpx.AsyncClient:
        key = target.host if target.scheme == "https" else ""
        client = self._clients.pop(key, None)
        if client is None:
            client = httpx.AsyncClient(
                verify=self._ssl, follow_redirects=False, trust_env=False, timeout=self.timeout
            )
            if len(self._clients) >= MAX_CLIENTS:
                oldest = next(iter(self._clients))
                asyncio.get_running_loop().create_task(self._clients.pop(oldest).aclose())
        self._clients[key] = client  # most recently used last
        return client

    async def post(
        self, target: Target, *, headers: Mapping[str, str], body: bytes, seconds: float | None = None
    ) -> httpx.Response:
        """The answer's status and headers (its body is not read); `seconds` overrides the timeout."""
        client = self._client(target)
        request = client.build_request(
            "POST",
            target.pinned_url,
            headers={**headers, "host": target.host_header},
            content=body,
            timeout=self.timeout if seconds is None else seconds,
        )
        if target.scheme == "https":
            request.extensions["sni_hostname"] = target.host
        response = await client.send(request, stream=True)
        await response.aclose()
        return response

    async def close(self) -> None:
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()
