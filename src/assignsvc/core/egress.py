"""Where webhooks may be sent: URL rules and the SSRF guard on resolved addresses.

A host name is judged by the addresses it resolves to (the caller resolves; this
module only decides), so `http://2130706433/`, `http://0x7f.1/`, `[::ffff:10.0.0.1]`
or a DNS name pointing at 169.254.169.254 are all refused as what they really are.
Only globally routable unicast addresses pass, unless an operator allow-lists a network.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from urllib.parse import SplitResult, urlsplit

from assignsvc.errors import FieldViolation

MAX_URL_LENGTH = 2048
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(spec: str) -> tuple[Network, ...]:
    """'127.0.0.0/8,::1/128' -> networks; ValueError names a bad entry."""
    networks = []
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        try:
            networks.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise ValueError(f"not a network: {part!r}") from None
    return tuple(networks)


def url_violations(url: str, field: str = "webhook.url") -> list[FieldViolation]:
    """Syntax rules: http(s), a host, no credentials, at most MAX_URL_LENGTH characters."""
    if not url:
        return [FieldViolation(field, "is required")]
    if len(url) > MAX_URL_LENGTH:
        return [FieldViolation(field, f"must be at most {MAX_URL_LENGTH} characters")]
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        return [FieldViolation(field, f"is not a valid URL: {exc}")]
    if parts.scheme not in ("http", "https"):
        return [FieldViolation(field, "must be an http:// or https:// URL")]
    if not parts.hostname:
        return [FieldViolation(field, "must name a host")]
    if parts.username is not None or parts.password is not None:
        return [FieldViolation(field, "must not carry credentials (use the token instead)")]
    if port == 0:
        return [FieldViolation(field, "must not use port 0")]
    if any(c.isspace() for c in url):
        return [FieldViolation(field, "must not contain whitespace")]
    return []


def target(url: str) -> tuple[SplitResult, str, int]:
    """(parts, host, port) of a URL that passed url_violations."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts, host, port


def _unwrapped(address: IPAddress) -> IPAddress:
    """The IPv4 address inside an IPv4-mapped, 6to4 or Teredo IPv6 address, else itself."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address.sixtofour is not None:
            return address.sixtofour
        if address.teredo is not None:
            return address.teredo[1]
    return address


def refusal(address: IPAddress, allowed: Sequence[Network]) -> str | None:
    """Why a connection to this address is refused, or None when it may be made."""
    inner = _unwrapped(address)
    if any(inner in net for net in allowed if net.version == inner.version):
        return None
    if any(address in net for net in allowed if net.version == address.version):
        return None
    if inner.is_multicast or inner.is_unspecified:
        kind = "multicast" if inner.is_multicast else "unspecified"
    elif inner.is_loopback:
        kind = "loopback"
    elif inner.is_link_local:
        kind = "link-local"
    elif inner.is_private or not inner.is_global:
        kind = "private or reserved"
    else:
        return None
    shown = f"{address} ({inner})" if inner != address else str(address)
    return f"resolves to a {kind} address {shown}, which webhooks may not reach"
