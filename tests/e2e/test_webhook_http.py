"""The webhook HTTP client against a real receiver: each checked address of a host is
tried in turn, so one unreachable address does not lose the delivery."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import Any
from urllib.parse import urlsplit

import pytest

from assignsvc.app.webhooks.http import SendError, post
from tests.support.webhook_receiver import receiver

LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"),)


def resolving_to(monkeypatch: pytest.MonkeyPatch, host: str, addresses: list[str]) -> None:
    """Make `host` resolve to addresses, in this order (the system resolver for any other)."""
    real = socket.getaddrinfo

    def getaddrinfo(name: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if name != host:
            return real(name, port, *args, **kwargs)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, int(port))) for a in addresses]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def test_the_next_address_is_tried_when_one_refuses(monkeypatch: pytest.MonkeyPatch) -> None:
    with receiver() as hook:
        port = urlsplit(hook.url).port
        # 127.0.0.2 is loopback too, but nothing listens there: the connection is refused
        resolving_to(monkeypatch, "hooks.example", ["127.0.0.2", "127.0.0.1"])
        url = f"http://hooks.example:{port}/hook"
        answer = asyncio.run(post(url, b"{}", {}, timeout_s=5, allowed=LOOPBACK))
        assert answer.status == 200
        assert len(hook.received()) == 1


def test_every_address_refusing_is_a_send_error(monkeypatch: pytest.MonkeyPatch) -> None:
    with receiver() as hook:
        port = urlsplit(hook.url).port
        resolving_to(monkeypatch, "hooks.example", ["127.0.0.2", "127.0.0.3"])
        with pytest.raises(SendError, match="Connect"):
            asyncio.run(post(f"http://hooks.example:{port}/hook", b"{}", {}, timeout_s=5, allowed=LOOPBACK))
        assert hook.received() == []
