"""Experiment definitions in Redis: one hash, an archive, a revision counter and a change channel.

Writers bump the revision and publish it with the changed ids in the same script:
a replica that sees every revision in sequence reads only the changed experiments,
and one that sees a gap (or misses a message) reloads everything.

Every write appends its webhook events (store.outbox reads them) to the events stream
in the same script: a change and its event are one atomic step.

Every key is tagged `{meta}`, so on a Redis Cluster all of them live in one slot and
each script stays one atomic step. There, commands go through store.cluster (which
follows slot moves) and the change feed subscribes on one node: see changes().
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Sequence
from typing import Any

from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.client import PubSub
from redis.asyncio.cluster import RedisCluster
from redis.commands.core import AsyncScript
from redis.typing import EncodableT

from assignsvc.core.model import Experiment
from assignsvc.store.cluster import run_one
from assignsvc.store.codec import experiment_from_json, experiment_to_json
from assignsvc.store.connection import RedisClient
from assignsvc.store.keys import Keyspace
from assignsvc.store.protocols import ChangeEvent, ChangeNotice, Expected, WriteConflict
from assignsvc.store.redis_errors import store_errors

# KEYS: experiments, archived, revision, events. ARGV: channel, number of writes N,
# N (id, expected, json) triples, then (type, write index, detail) triples of events.
# expected: a revision, "new" (must be neither live nor archived) or "" (any).
# All or nothing: returns {0, global revision} or {1, triple index, found} where found
# is the stored revision, -1 for none or -2 for archived. Each event is appended to the
# events stream in the same atomic step as its write, so no change is ever without it.
_WRITE_SCRIPT = """
local function stored_revision(id)
  local raw = redis.call('HGET', KEYS[1], id)
  if raw then return tonumber(cjson.decode(raw)['revision'] or 0) end
  if redis.call('HEXISTS', KEYS[2], id) == 1 then return -2 end
  return -1
end
local last = 2 + 3 * tonumber(ARGV[2])
for i = 3, last, 3 do
  local expected = ARGV[i + 1]
  if expected ~= '' then
    local found = stored_revision(ARGV[i])
    local ok = (expected == 'new' and found == -1) or (tonumber(expected) == found)
    if not ok then return {1, (i - 3) / 3, found} end
  end
end
for i = 3, last, 3 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 2]) end
for i = last + 1, #ARGV, 3 do
  local w = 3 + 3 * tonumber(ARGV[i + 1])
  redis.call('XADD', KEYS[4], '*', 'type', ARGV[i], 'experiment', ARGV[w + 2], 'detail', ARGV[i + 2])
end
local rev = redis.call('INCR', KEYS[3])
local notice = {rev}
for i = 3, last, 3 do table.insert(notice, ARGV[i]) end
redis.call('PUBLISH', ARGV[1], table.concat(notice, ' '))
return {0, rev}
"""

# KEYS: experiments, archived, revision, events. ARGV: channel, id, expected revision or "".
# Moves the definition to the archive and appends experiment.deleted. Returns {0} or {1, found}.
_ARCHIVE_SCRIPT = """
local raw = redis.call('HGET', KEYS[1], ARGV[2])
if not raw then return {1, -1} end
local found = tonumber(cjson.decode(raw)['revision'] or 0)
if ARGV[3] ~= '' and tonumber(ARGV[3]) ~= found then return {1, found} end
redis.call('HDEL', KEYS[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[2], raw)
redis.call('XADD', KEYS[4], '*', 'type', 'experiment.deleted', 'experiment', raw, 'detail', '{}')
local rev = redis.call('INCR', KEYS[3])
redis.call('PUBLISH', ARGV[1], rev .. ' ' .. ARGV[2])
return {0}
"""

# KEYS: experiments hash, revision, ARGV: id, json, channel. Overwrites; returns the revision.
_PUT_SCRIPT = """
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
local rev = redis.call('INCR', KEYS[2])
redis.call('PUBLISH', ARGV[3], rev .. ' ' .. ARGV[1])
return rev
"""


# KEYS: revision, experiments. Returns {revision or false, flat HGETALL}: one atomic read
# (a script rather than MULTI, which older redis-py asyncio cluster clients refuse).
_LOAD_ALL_SCRIPT = """
return {redis.call('GET', KEYS[1]), redis.call('HGETALL', KEYS[2])}
"""


# First item of changes(): the subscription is live (anything before it may be missed).
SUBSCRIBED = ChangeNotice(revision=-1, experiment_ids=())


def parse_notice(payload: bytes) -> ChangeNotice:
    """'REVISION ID [ID...]' as the write scripts publish it (ids never hold spaces)."""
    revision, *ids = payload.decode().split(" ")
    return ChangeNotice(int(revision), tuple(ids))


class RedisExperimentStore:
    """ExperimentStore on Redis."""

    def __init__(self, redis: RedisClient, keys: Keyspace) -> None:
        self._redis = redis
        self._keys = keys
        self._write = redis.register_script(_WRITE_SCRIPT)
        self._archive = redis.register_script(_ARCHIVE_SCRIPT)
        self._put = redis.register_script(_PUT_SCRIPT)
        self._load_all = redis.register_script(_LOAD_ALL_SCRIPT)
        self._subscriptions = itertools.count()  # which cluster node the next subscription tries
        self._meta_keys = [keys.experiments, keys.archived_experiments, keys.experiments_revision, keys.events]

    async def _script(self, script: AsyncScript, keys: Sequence[str], args: Sequence[EncodableT]) -> Any:
        """Run one of the scripts; on a Redis Cluster through store.cluster, which follows
        ASK reliably (redis-py's asyncio client does not: see store.cluster)."""
        if isinstance(self._redis, RedisCluster):
            command = ("EVALSHA", script.sha, len(keys), *keys, *args)
            return await run_one(self._redis, command, script.script)
        return await script(keys=keys, args=args)

    async def _command(self, *command: EncodableT) -> Any:
        """One plain command, routed as _script routes scripts."""
        if isinstance(self._redis, RedisCluster):
            return await run_one(self._redis, command)
        return await self._redis.execute_command(*command)  # type: ignore[no-untyped-call, unused-ignore]  # unannotated in redis-py

    async def write(
        self, writes: Sequence[tuple[Experiment, Expected]], events: Sequence[ChangeEvent] = ()
    ) -> WriteConflict | None:
        """See ExperimentStore.write."""
        args: list[str | int] = [self._keys.experiment_changes, len(writes)]
        for experiment, expected in writes:
            args += [experiment.id, "" if expected is None else expected, experiment_to_json(experiment)]
        for event in events:
            args += [event.type, event.write_index, event.detail]
        with store_errors("write experiments"):
            reply = await self._script(self._write, self._meta_keys, args)
        if int(reply[0]) == 0:
            return None
        index = int(reply[1])
        return WriteConflict(writes[index][0].id, int(reply[2]))

    async def archive(self, experiment_id: str, expected: int | None) -> WriteConflict | None:
        """See ExperimentStore.archive."""
        args = [self._keys.experiment_changes, experiment_id, "" if expected is None else expected]
        with store_errors("archive experiment"):
            reply = await self._script(self._archive, self._meta_keys, args)
        return None if int(reply[0]) == 0 else WriteConflict(experiment_id, int(reply[1]))

    async def put(self, experiment: Experiment) -> None:
        """See ExperimentStore.put."""
        keys = [self._keys.experiments, self._keys.experiments_revision]
        args = [experiment.id, experiment_to_json(experiment), self._keys.experiment_changes]
        with store_errors("put experiment"):
            await self._script(self._put, keys, args)

    async def get(self, experiment_id: str) -> Experiment | None:
        """See ExperimentStore.get."""
        with store_errors("get experiment"):
            raw = await self._command("HGET", self._keys.experiments, experiment_id)
        return None if raw is None else experiment_from_json(raw)

    async def get_archived(self, experiment_id: str) -> Experiment | None:
        """See ExperimentStore.get_archived."""
        with store_errors("get archived experiment"):
            raw = await self._command("HGET", self._keys.archived_experiments, experiment_id)
        return None if raw is None else experiment_from_json(raw)

    async def load_all(self) -> tuple[int, dict[str, Experiment]]:
        """See ExperimentStore.load_all (one script, so revision and rows agree)."""
        with store_errors("load experiments"):
            revision, flat = await self._script(
                self._load_all, [self._keys.experiments_revision, self._keys.experiments], []
            )
        experiments = {}
        for raw in flat[1::2]:  # HGETALL's flat reply: id, json, id, json, ...
            experiment = experiment_from_json(raw)
            experiments[experiment.id] = experiment
        return int(revision or 0), experiments

    async def revision(self) -> int:
        """See ExperimentStore.revision."""
        with store_errors("read revision"):
            value = await self._command("GET", self._keys.experiments_revision)
        return int(value or 0)

    async def changes(self) -> AsyncIterator[ChangeNotice]:
        """See ExperimentStore.changes; ends (raising) when the connection drops."""
        node: Redis | None = None
        if isinstance(self._redis, RedisCluster):
            node = await self._subscriber_node(self._redis)
            pubsub: PubSub = node.pubsub(ignore_subscribe_messages=True)
        else:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        try:
            with store_errors("subscribe to experiment changes"):
                await pubsub.subscribe(self._keys.experiment_changes)
                yield SUBSCRIBED
                async for message in pubsub.listen():
                    data = message.get("data")
                    if isinstance(data, bytes):
                        yield parse_notice(data)
        finally:
            await pubsub.aclose()  # type: ignore[no-untyped-call, unused-ignore]  # unannotated before redis-py 8
            if node is not None:
                await node.aclose()

    async def _subscriber_node(self, cluster: RedisCluster) -> Redis:
        """A plain client to one cluster node, for the change feed.

        A PUBLISH on a Redis Cluster reaches every node, so a subscriber on any one node
        hears every write. A plain client keeps this independent of redis-py's cluster
        pub/sub (asyncio only from redis-py 8) and of the cluster's connection budget.
        Each (re)subscription takes the next node in turn: when a node dies, the
        registry's resubscribe lands on another one.
        """
        with store_errors("subscribe to experiment changes"):
            await cluster.initialize()  # learns the nodes once; a no-op afterwards
        nodes = cluster.get_nodes()
        chosen = nodes[next(self._subscriptions) % len(nodes)]
        pool = ConnectionPool(connection_class=chosen.connection_class, **chosen.connection_kwargs)
        return Redis.from_pool(pool)  # the client owns the pool and closes it
