"""The Redis client of a server process: one bounded, blocking connection pool.

A blocking pool makes a burst of concurrent calls wait (up to the timeout) for a
connection instead of failing: redis-py's default pool raises MaxConnectionsError.

A command that hits a dead pooled connection (Redis restarted) is retried once, at
once, on a fresh connection; otherwise every stale connection in the pool would
turn into one UNAVAILABLE after Redis comes back. The retry is safe for every
command here: the claim script reads before it writes, so a replay after a lost
reply finds the row instead of writing a second one. Timeouts are not retried, so
a call still fails within one Redis timeout.

A redis+cluster:// URL gives a RedisCluster (slot routing, MOVED/ASK followed by
redis-py) held to the same rules: see BoundedRedisCluster.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import ClusterNode, ClusterPipeline, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from assignsvc.config import is_cluster_url, split_cluster_url

DEFAULT_MAX_CONNECTIONS = 64

# What the stores accept: a standalone client or a cluster client.
RedisClient = Redis | RedisCluster


def connect(url: str, timeout_s: float, max_connections: int = DEFAULT_MAX_CONNECTIONS) -> RedisClient:
    """A client for url (redis://, rediss://, unix://, redis+cluster://, rediss+cluster://); connects lazily."""
    if is_cluster_url(url):
        return connect_cluster(url, timeout_s, max_connections)
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=timeout_s,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        retry=Retry(NoBackoff(), retries=1, supported_errors=(RedisConnectionError,)),
    )
    return Redis.from_pool(pool)  # the client owns the pool and closes it


def connect_cluster(url: str, timeout_s: float, max_connections: int = DEFAULT_MAX_CONNECTIONS) -> RedisCluster:
    """A RedisCluster for redis+cluster://host:port[,host:port...]; every listed node is a startup node."""
    first_node_url, nodes = split_cluster_url(url)
    return BoundedRedisCluster.from_url(
        first_node_url,
        startup_nodes=[ClusterNode(host, port) for host, port in nodes[1:]],
        max_connections=max_connections,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        # One retry, at once, on a refreshed slot map. Unlike standalone, redis-py retries
        # a timeout too (and CLUSTERDOWN): after a master fails over, only the refresh
        # that follows finds its replacement. A call fails within about two timeouts.
        retry=Retry(NoBackoff(), retries=1),
        # On MOVED, patch the one slot and go on. The default (a full reload and
        # aclose() of every connection on every 5th MOVED) breaks the commands that
        # other tasks have in flight: a resharding would surface as UNAVAILABLE.
        reinitialize_steps=0,
        gate_timeout_s=timeout_s,
    )


# Set while a task holds a gate slot, so that a call redis-py makes from inside one
# (a pipeline re-sending a redirected command) does not wait for a second slot.
_HOLDS_SLOT: ContextVar[bool] = ContextVar("assignsvc_holds_redis_slot", default=False)


class _Gate:
    """At most `limit` operations in flight; the next waits up to timeout_s, then fails."""

    def __init__(self, limit: int, timeout_s: float) -> None:
        self._slots = asyncio.Semaphore(limit)
        self._timeout_s = timeout_s

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        if _HOLDS_SLOT.get():
            yield
            return
        try:
            async with asyncio.timeout(self._timeout_s):
                await self._slots.acquire()
        except TimeoutError:
            raise RedisConnectionError("no Redis Cluster connection free within the timeout") from None
        token = _HOLDS_SLOT.set(True)
        try:
            yield
        finally:
            _HOLDS_SLOT.reset(token)
            self._slots.release()


class BoundedRedisCluster(RedisCluster):
    """RedisCluster on which a burst waits for a connection instead of failing.

    redis-py's cluster client keeps a pool per node that raises MaxConnectionsError
    when it is full, and has no blocking variant. Here at most max_connections
    commands or pipelines are in flight at once; each holds at most one connection
    per node at a time, so no node's pool (max_connections too) ever runs out. A
    command waits up to the timeout for its turn, as on the standalone pool.
    """

    def __init__(self, *args: Any, gate_timeout_s: float = 1.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._gate = _Gate(kwargs.get("max_connections", DEFAULT_MAX_CONNECTIONS), gate_timeout_s)

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        """See RedisCluster.execute_command; waits for a slot first."""
        async with self._gate.slot():
            return await super().execute_command(*args, **kwargs)

    def pipeline(self, transaction: Any | None = None, shard_hint: Any | None = None) -> ClusterPipeline:
        """See RedisCluster.pipeline; the pipeline's execute waits for a slot first."""
        if shard_hint:
            return super().pipeline(transaction, shard_hint)  # redis-py raises the error
        # redis-py's typing leaves a Protocol attribute of ClusterPipeline unset: not abstract at run time.
        return _GatedClusterPipeline(self, self._gate, transaction)  # type: ignore[abstract]


class _GatedClusterPipeline(ClusterPipeline):
    """A ClusterPipeline whose execute() holds a slot of its client's gate."""

    def __init__(self, client: RedisCluster, gate: _Gate, transaction: Any | None) -> None:
        super().__init__(client, transaction)
        self._gate = gate

    async def execute(self, raise_on_error: bool = True, allow_redirections: bool = True) -> list[Any]:
        """See ClusterPipeline.execute."""
        async with self._gate.slot():
            return await super().execute(raise_on_error, allow_redirections)
