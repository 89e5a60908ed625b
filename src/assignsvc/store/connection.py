"""The Redis client of a server process: one bounded, blocking connection pool.

A blocking pool makes a burst of concurrent calls wait (up to the timeout) for a
connection instead of failing: redis-py's default pool raises MaxConnectionsError.
"""

from __future__ import annotations

from redis.asyncio import BlockingConnectionPool, Redis

DEFAULT_MAX_CONNECTIONS = 64


def connect(url: str, timeout_s: float, max_connections: int = DEFAULT_MAX_CONNECTIONS) -> Redis:
    """A client for url (redis://, rediss:// or unix://); connects lazily."""
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=timeout_s,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
    )
    return Redis.from_pool(pool)  # the client owns the pool and closes it
