"""The Redis client of a server process: one bounded, blocking connection pool.

A blocking pool makes a burst of concurrent calls wait (up to the timeout) for a
connection instead of failing: redis-py's default pool raises MaxConnectionsError.

A command that hits a dead pooled connection (Redis restarted) is retried once, at
once, on a fresh connection; otherwise every stale connection in the pool would
turn into one UNAVAILABLE after Redis comes back. The retry is safe for every
command here: the claim script reads before it writes, so a replay after a lost
reply finds the row instead of writing a second one. Timeouts are not retried, so
a call still fails within one Redis timeout.
"""

from __future__ import annotations

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

DEFAULT_MAX_CONNECTIONS = 64


def connect(url: str, timeout_s: float, max_connections: int = DEFAULT_MAX_CONNECTIONS) -> Redis:
    """A client for url (redis://, rediss:// or unix://); connects lazily."""
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=timeout_s,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        retry=Retry(NoBackoff(), retries=1, supported_errors=(RedisConnectionError,)),
    )
    return Redis.from_pool(pool)  # the client owns the pool and closes it
