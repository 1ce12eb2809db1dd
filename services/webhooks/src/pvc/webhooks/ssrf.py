"""SSRF guard: resolve a webhook URL once, refuse non-public addresses, and pin the connection to it.

The address that was checked is the address connected to (see `delivery.send`), so a DNS answer that
changes between check and connect (rebinding) cannot redirect a delivery.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from pvc.core.errors import ValidationFailed

MAX_URL_CHARS = 2048
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# host, port -> every address the name resolves to.
Resolver = Callable[[str, int], Awaitable[list[str]]]

CGNAT = ipaddress.ip_network("100.64.0.0/10")
NAT64 = ipaddress.ip_network("64:ff9b::/96")


async def system_resolver(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def refusal(ip: IPAddress) -> str | None:
    """Why `ip` may not be a webhook target, or None when it is a public unicast address."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is None and ip in NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
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


@dataclass(frozen=True)
class Target:
    """Where a delivery connects: the URL's parts plus the one checked address."""

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
    return ValidationFailed(message, details={"fields": {"url": message}})


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


async def resolve_target(url: str, *, resolver: Resolver, allow_private: bool) -> Target:
    """Resolve once and check every answer; raises ValidationFailed for a refused URL."""
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
            answers = await resolver(host, port)
        except (OSError, UnicodeError) as exc:
            raise _invalid(f"host '{host}' does not resolve ({exc})") from None
        if not answers:
            raise _invalid(f"host '{host}' does not resolve")
    addresses = [ipaddress.ip_address(a.split("%", 1)[0]) for a in answers]
    if not allow_private:
        for ip in addresses:
            reason = refusal(ip)
            if reason:
                raise _invalid(f"resolves to a {reason} address ({ip}), which webhooks may not target")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Target(url=url, scheme=parts.scheme, host=host, port=port, ip=str(addresses[0]), path=path)
