"""Translate redis-py failures into the domain's StoreUnavailableError."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from redis.exceptions import RedisClusterException, RedisError

from assignsvc.errors import StoreUnavailableError

T = TypeVar("T")


@contextmanager
def store_errors(operation: str) -> Iterator[None]:
    """Any Redis failure inside becomes StoreUnavailableError naming the operation.

    Scripts are atomic, so a failure means nothing (or everything) was written,
    never half: callers may retry safely.
    """
    try:
        yield
    except (RedisError, RedisClusterException) as exc:  # the latter: no reachable cluster node, ...
        raise StoreUnavailableError(f"store unavailable during {operation}: {type(exc).__name__}: {exc}") from exc
    except OSError as exc:  # socket errors that redis-py lets through
        raise StoreUnavailableError(f"store unavailable during {operation}: {exc}") from exc


async def bounded(awaitable: Awaitable[T], timeout_s: float | None, operation: str) -> T:
    """`awaitable`, given up after timeout_s (a caller's deadline) as StoreUnavailableError."""
    if timeout_s is None:
        return await awaitable
    try:
        async with asyncio.timeout(timeout_s):
            return await awaitable
    except TimeoutError:
        raise StoreUnavailableError(f"store did not answer the {operation} within {timeout_s:.3f}s") from None
