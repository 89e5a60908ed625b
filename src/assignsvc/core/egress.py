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


def url_violations(url: str, field: str = "webhook.url") -> list[FieldViolation]:
    """Syntax rules: http(s), a host, no credentials, at most MAX_URL_LENGTH characters."""
    if not url or len(url) > MAX_URL_LENGTH:
        return [FieldViolation(field, f"must be a URL of 1 to {MAX_URL_LENGTH} characters")]
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        return [FieldViolation(field, f"is not a valid URL: {exc}")]
    rules = (
        (parts.scheme in ("http", "https"), "must be an http:// or https:// URL"),
        (bool(parts.hostname), "must name a host"),
        (parts.username is None and parts.password is None, "must not carry credentials (use the token instead)"),
        (port != 0, "must not use port 0"),
        (url.isascii() and not any(c.isspace() for c in url), "must be ASCII without whitespace (IDNA-encode hosts)"),
    )
    return [FieldViolation(field, message) for ok, message in rules if not ok][:1]


def target(url: str) -> tuple[SplitResult, str, int]:
    """(parts, host, port) of a URL that passed url_violations."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts, host, port


# IPv6 prefixes that carry an IPv4 address in their last 32 bits: NAT64 (RFC 6052, RFC 8215)
# and the deprecated IPv4-compatible form (::a.b.c.d). On an IPv6-only cluster with DNS64 a
# NAT64 address reaches the IPv4 address inside it, private ones included.
_EMBEDS_IPV4 = (
    ipaddress.IPv6Network("64:ff9b::/96"),
    ipaddress.IPv6Network("64:ff9b:1::/48"),
    ipaddress.IPv6Network("::/96"),
)


def _unwrapped(address: IPAddress) -> IPAddress:
    """The IPv4 address inside an IPv4-mapped, 6to4, Teredo, NAT64 or IPv4-compatible IPv6
    address, else itself."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address.sixtofour is not None:
            return address.sixtofour
        if address.teredo is not None:
            return address.teredo[1]
        if not (address.is_loopback or address.is_unspecified) and any(address in net for net in _EMBEDS_IPV4):
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


_SITE_LOCAL = ipaddress.IPv6Network("fec0::/10")  # deprecated (RFC 3879) but still routed by some stacks


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
    elif inner.is_link_local or inner in _SITE_LOCAL:
        kind = "link-local or site-local"
    elif inner.is_private or not inner.is_global:
        kind = "private or reserved"
    else:
        return None
    shown = f"{address} ({inner})" if inner != address else str(address)
    return (
        f"resolves to a {kind} address {shown}, which webhooks may not reach unless the server allows it: "
        f"serve --webhook-allow-networks {ipaddress.ip_network(inner)} "
        f"(or ASSIGNSVC_WEBHOOK_ALLOW_NETWORKS={ipaddress.ip_network(inner)} make run)"
    )
