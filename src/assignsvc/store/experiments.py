"""Experiment definitions in Redis: one hash, an archive, a revision counter and a change channel.

Writers bump the revision and publish it with the changed ids in the same script:
a replica that sees every revision in sequence reads only the changed experiments,
and one that sees a gap (or misses a message) reloads everything.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from redis.asyncio import Redis

from assignsvc.core.model import Experiment
from assignsvc.store.codec import experiment_from_json, experiment_to_json
from assignsvc.store.keys import Keyspace
from assignsvc.store.protocols import ChangeNotice, Expected, WriteConflict
from assignsvc.store.redis_errors import store_errors

# KEYS: experiments, archived, revision. ARGV: channel, then (id, expected, json) triples.
# expected: a revision, "new" (must be neither live nor archived) or "" (any).
# All or nothing: returns {0, global revision} or {1, triple index, found} where found
# is the stored revision, -1 for none or -2 for archived.
_WRITE_SCRIPT = """
local function stored_revision(id)
  local raw = redis.call('HGET', KEYS[1], id)
  if raw then return tonumber(cjson.decode(raw)['revision'] or 0) end
  if redis.call('HEXISTS', KEYS[2], id) == 1 then return -2 end
  return -1
end
for i = 2, #ARGV, 3 do
  local expected = ARGV[i + 1]
  if expected ~= '' then
    local found = stored_revision(ARGV[i])
    local ok = (expected == 'new' and found == -1) or (tonumber(expected) == found)
    if not ok then return {1, (i - 2) / 3, found} end
  end
end
for i = 2, #ARGV, 3 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 2]) end
local rev = redis.call('INCR', KEYS[3])
local notice = {rev}
for i = 2, #ARGV, 3 do table.insert(notice, ARGV[i]) end
redis.call('PUBLISH', ARGV[1], table.concat(notice, ' '))
return {0, rev}
"""

# KEYS: experiments, archived, revision. ARGV: channel, id, expected revision or "".
# Moves the definition to the archive. Returns {0} or {1, found} as above.
_ARCHIVE_SCRIPT = """
local raw = redis.call('HGET', KEYS[1], ARGV[2])
if not raw then return {1, -1} end
local found = tonumber(cjson.decode(raw)['revision'] or 0)
if ARGV[3] ~= '' and tonumber(ARGV[3]) ~= found then return {1, found} end
redis.call('HDEL', KEYS[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[2], raw)
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


# First item of changes(): the subscription is live (anything before it may be missed).
SUBSCRIBED = ChangeNotice(revision=-1, experiment_ids=())


def parse_notice(payload: bytes) -> ChangeNotice:
    """'REVISION ID [ID...]' as the write scripts publish it (ids never hold spaces)."""
    revision, *ids = payload.decode().split(" ")
    return ChangeNotice(int(revision), tuple(ids))


class RedisExperimentStore:
    """ExperimentStore on Redis."""

    def __init__(self, redis: Redis, keys: Keyspace) -> None:
        self._redis = redis
        self._keys = keys
        self._write = redis.register_script(_WRITE_SCRIPT)
        self._archive = redis.register_script(_ARCHIVE_SCRIPT)
        self._put = redis.register_script(_PUT_SCRIPT)
        self._meta_keys = [keys.experiments, keys.archived_experiments, keys.experiments_revision]

    async def write(self, writes: Sequence[tuple[Experiment, Expected]]) -> WriteConflict | None:
        """See ExperimentStore.write."""
        args: list[str | int] = [self._keys.experiment_changes]
        for experiment, expected in writes:
            args += [experiment.id, "" if expected is None else expected, experiment_to_json(experiment)]
        with store_errors("write experiments"):
            reply = await self._write(keys=self._meta_keys, args=args)
        if int(reply[0]) == 0:
            return None
        index = int(reply[1])
        return WriteConflict(writes[index][0].id, int(reply[2]))

    async def archive(self, experiment_id: str, expected: int | None) -> WriteConflict | None:
        """See ExperimentStore.archive."""
        args = [self._keys.experiment_changes, experiment_id, "" if expected is None else expected]
        with store_errors("archive experiment"):
            reply = await self._archive(keys=self._meta_keys, args=args)
        return None if int(reply[0]) == 0 else WriteConflict(experiment_id, int(reply[1]))

    async def put(self, experiment: Experiment) -> None:
        """See ExperimentStore.put."""
        keys = [self._keys.experiments, self._keys.experiments_revision]
        args = [experiment.id, experiment_to_json(experiment), self._keys.experiment_changes]
        with store_errors("put experiment"):
            await self._put(keys=keys, args=args)

    async def get(self, experiment_id: str) -> Experiment | None:
        """See ExperimentStore.get."""
        with store_errors("get experiment"):
            raw = await self._redis.hget(self._keys.experiments, experiment_id)
        return None if raw is None else experiment_from_json(raw)

    async def get_archived(self, experiment_id: str) -> Experiment | None:
        """See ExperimentStore.get_archived."""
        with store_errors("get archived experiment"):
            raw = await self._redis.hget(self._keys.archived_experiments, experiment_id)
        return None if raw is None else experiment_from_json(raw)

    async def load_all(self) -> tuple[int, dict[str, Experiment]]:
        """See ExperimentStore.load_all (one MULTI, so revision and rows agree)."""
        with store_errors("load experiments"):
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.get(self._keys.experiments_revision)
                pipe.hgetall(self._keys.experiments)
                revision, rows = await pipe.execute()
        experiments = {}
        for raw in rows.values():
            experiment = experiment_from_json(raw)
            experiments[experiment.id] = experiment
        return int(revision or 0), experiments

    async def revision(self) -> int:
        """See ExperimentStore.revision."""
        with store_errors("read revision"):
            value = await self._redis.get(self._keys.experiments_revision)
        return int(value or 0)

    async def changes(self) -> AsyncIterator[ChangeNotice]:
        """See ExperimentStore.changes; ends (raising) when the connection drops."""
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
            await pubsub.aclose()  # type: ignore[no-untyped-call]  # redis-py leaves it unannotated
