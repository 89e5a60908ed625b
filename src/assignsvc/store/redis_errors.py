"""Translate redis-py failures into the domain's StoreUnavailableError."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from redis.exceptions import RedisClusterException, RedisError

from assignsvc.errors import StoreUnavailableError


@contextmanager
def store_errors(operation: str) -> Iterator[None]:
    """Any Redis failure inside becomes StoreUnavailableError naming the operation.

    Scripts are atomic, so a failure means nothing (or everything) was written,
    never half: callers may retry safely.
    """
    try:
        yield
    except (RedisError, RedisClusterException) as exc:  # the latter: no reachable cluster node, ...
        raise StoreUnavailableError(
            f"store unavailable during {operation}: {type(exc).__name__}: {exc}"
        ) from exc
    except OSError as exc:  # socket errors that redis-py lets through
        raise StoreUnavailableError(f"store unavailable during {operation}: {exc}") from exc
