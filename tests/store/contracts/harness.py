"""Every store implementation, one deployment at a time, for the contract suites.

A suite's tests take the `deployment` fixture and run once per implementation their module's
KINDS (default: every kind): the Redis stores on a real standalone Redis, the same with
claims pipelined on the fast pipe, the Redis stores on a real 3-master Redis Cluster
(claims one by one and pipelined), and the in-memory stores. A test body is a
coroutine over a Stores, run by `run`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import TypeVar

from redis.asyncio.cluster import RedisCluster

from assignsvc.store import protocols as p
from assignsvc.store.access import RedisAccessStore
from assignsvc.store.assignments import RedisAssignmentStore
from assignsvc.store.claims import ClaimCodec
from assignsvc.store.cluster import ClusterAssignmentStore
from assignsvc.store.connection import connect
from assignsvc.store.experiments import RedisExperimentStore
from assignsvc.store.fastpipe import FastScriptPipe
from assignsvc.store.keys import Keyspace
from assignsvc.store.memory import MemoryStores
from assignsvc.store.outbox import RedisOutbox
from assignsvc.store.pipelining import PipelinedAssignmentStore
from assignsvc.store.rows import PREASSIGN_SCRIPT, AssignmentRows, cluster_runner, pipe_runner
from assignsvc.store.saved_groups import RedisSavedGroupStore
from assignsvc.store.transports import FastPipeTransport
from assignsvc.store.webhooks import RedisWebhookStore

T = TypeVar("T")
# Claims one by one on standalone Redis; pipelined on the fast pipe; on a cluster, one by
# one and pipelined (redis-py pipelines); in memory.
ALL_KINDS = ("redis", "pipelined", "cluster", "pipelined-cluster", "memory")
# What differs between kinds beyond the claims: standalone, cluster, memory.
DEPLOYMENTS = ("redis", "cluster", "memory")


@dataclass(frozen=True)
class Stores:
    """One deployment's stores, all over the same storage (as a server wires them)."""

    kind: str
    assignments: p.AssignmentStore
    rows: p.AssignmentRowStore
    experiments: p.ExperimentStore
    groups: p.SavedGroupStore
    webhooks: p.WebhookStore
    outbox: p.Outbox
    access: p.AccessStore


@dataclass(frozen=True)
class Deployment:
    """Which implementation a test runs against, and the URL of its server ('' in memory)."""

    kind: str
    url: str


@asynccontextmanager
async def open_stores(deployment: Deployment, keys: Keyspace | None = None) -> AsyncIterator[Stores]:
    """The stores of one deployment (closed after), as server.wiring builds them."""
    if deployment.kind == "memory":
        m = MemoryStores.create()
        yield Stores("memory", m.assignments, m.rows, m.experiments, m.groups, m.webhooks, m.outbox, m.access)
        return
    keys = keys or Keyspace()
    async with AsyncExitStack() as stack:
        redis = connect(deployment.url, timeout_s=5.0)
        stack.push_async_callback(redis.aclose)
        if isinstance(redis, RedisCluster):
            claims: RedisAssignmentStore | ClusterAssignmentStore = ClusterAssignmentStore(redis, keys)
            rows = AssignmentRows(cluster_runner(redis), keys)
        else:
            claims = RedisAssignmentStore(redis, keys)
            bulk = FastScriptPipe(deployment.url, PREASSIGN_SCRIPT, 10.0, name="contract-bulk")
            stack.push_async_callback(bulk.close)
            rows = AssignmentRows(pipe_runner(bulk), keys)
        assignments: p.AssignmentStore = claims
        if deployment.kind == "pipelined" and not isinstance(redis, RedisCluster):
            fast = FastPipeTransport(deployment.url, 5.0, ClaimCodec(keys))
            stack.push_async_callback(fast.pipe.close)
            assignments = PipelinedAssignmentStore(RedisAssignmentStore(redis, keys, fast), fast)
        elif deployment.kind == "pipelined-cluster":
            assignments = PipelinedAssignmentStore(claims, claims.transport)
        yield Stores(
            deployment.kind,
            assignments,
            rows,
            RedisExperimentStore(redis, keys),
            RedisSavedGroupStore(redis, keys),
            RedisWebhookStore(redis, keys),
            RedisOutbox(redis, keys),
            RedisAccessStore(redis, keys),
        )


def run(deployment: Deployment, body: Callable[[Stores], Awaitable[T]]) -> T:
    """body(stores) on a fresh event loop, the stores closed after."""

    async def main() -> T:
        async with open_stores(deployment) as stores:
            return await body(stores)

    return asyncio.run(main())
