"""The HTTP side of a delivery: resolve, check, connect to the checked address, POST.

Standard library only (asyncio streams): a webhook POST needs one request and the
status line, nothing a client library adds is worth its weight here, and owning the
connect step is what makes the SSRF guard hold. The host is resolved once, every
address it resolves to is checked (core.egress), and the connection goes to that
checked address, so a DNS answer that changes between check and connect (rebinding)
cannot send the request elsewhere. Redirects are never followed; the response body is
never read (the connection is closed after the headers), so a 10 MB answer costs nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from assignsvc.core.egress import IPAddress, Network, refusal, target

MAX_HEADER_BYTES = 64 * 1024
USER_AGENT = "assignsvc-webhooks/1"


class SendError(Exception):
    """The request got no HTTP answer: refused address, DNS, connection, timeout, garbage."""


class RefusedAddressError(SendError):
    """The URL's host resolves to an address webhooks may not reach."""


@dataclass(frozen=True, slots=True)
class Response:
    """What the receiver answered: status and headers (names lower-case)."""

    status: int
    headers: Mapping[str, str]


async def resolve_checked(host: str, port: int, allowed: Sequence[Network]) -> list[IPAddress]:
    """The addresses to connect to, in the resolver's order; RefusedAddress if any address
    of the host is refused.

    Every address counts, not just the first: a name resolving to one public and one
    private address is refused (the system's resolver order could pick either).
    """
    try:
        addresses: list[IPAddress] = [ipaddress.ip_address(host)]
    except ValueError:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise SendError(f"cannot resolve {host!r}: {exc}") from None
        addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    if not addresses:
        raise SendError(f"cannot resolve {host!r}: no address")
    for address in addresses:
        reason = refusal(address, allowed)
        if reason is not None:
            raise RefusedAddressError(f"{host} {reason}")
    return list(dict.fromkeys(addresses))  # each once (getaddrinfo repeats them per protocol)


async def post(
    url: str, body: bytes, headers: Mapping[str, str], *, timeout_s: float, allowed: Sequence[Network]
) -> Response:
    """POST body to url; the answer's status and headers. SendError when there is none in time."""
    parts, host, port = target(url)
    try:
        async with asyncio.timeout(timeout_s):
            addresses = await resolve_checked(host, port, allowed)
            context = ssl.create_default_context() if parts.scheme == "https" else None
            reader, writer = await _connect(addresses, port, context, host)
            try:
                writer.write(_request(parts.path or "/", parts.query, parts.netloc.rpartition("@")[2], body, headers))
                await writer.drain()
                return await _read_head(reader)
            finally:
                writer.close()
                with contextlib.suppress(OSError, ssl.SSLError):  # the answer (or failure) is known already
                    await writer.wait_closed()
    except TimeoutError:
        raise SendError(f"no answer within {timeout_s:g}s") from None
    except (OSError, ssl.SSLError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
        if isinstance(exc, SendError):
            raise
        raise SendError(f"{type(exc).__name__}: {exc}") from None


async def _connect(
    addresses: Sequence[IPAddress], port: int, context: ssl.SSLContext | None, host: str
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection to the first checked address that accepts one (each tried in turn, as a
    browser would: a host with an unreachable IPv6 address still gets its POST over IPv4)."""
    failure: OSError | None = None
    for address in addresses:
        try:
            return await asyncio.open_connection(
                str(address), port, ssl=context, server_hostname=host if context else None, limit=MAX_HEADER_BYTES
            )
        except OSError as exc:
            failure = exc
    assert failure is not None  # resolve_checked returns at least one address
    raise failure


def _request(path: str, query: str, host_header: str, body: bytes, headers: Mapping[str, str]) -> bytes:
    target_path = path + ("?" + query if query else "")
    lines = [
        f"POST {target_path} HTTP/1.1",
        f"Host: {host_header}",
        f"User-Agent: {USER_AGENT}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        "Connection: close",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


async def _read_head(reader: asyncio.StreamReader) -> Response:
    status_line = (await reader.readuntil(b"\r\n")).decode("latin-1")
    version, _, rest = status_line.partition(" ")
    code = rest[:3]
    if not version.startswith("HTTP/1.") or not code.isdigit():
        raise SendError(f"not an HTTP answer: {status_line[:80]!r}")
    headers: dict[str, str] = {}
    size = len(status_line)
    while True:
        line = (await reader.readuntil(b"\r\n")).decode("latin-1")
        size += len(line)
        if size > MAX_HEADER_BYTES:
            raise SendError("answer headers larger than 64 KiB")
        if line == "\r\n":
            return Response(int(code), headers)
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
