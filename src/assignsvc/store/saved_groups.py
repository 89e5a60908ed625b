"""Saved groups in Redis: a description hash and one set of ids per group, all tagged `{meta}`.

Every write is one script that checks the group's revision (its etag), changes the ids,
stores the description with the set's new size, and bumps and publishes the same
revision counter and channel as experiment writes (the notice names `group:ID`), so
replicas learn of it exactly as they learn of experiment changes. Being in the `{meta}`
slot keeps each script atomic on a Redis Cluster too (all groups live on one node).

A big list is streamed into a staging set (which expires if the upload is abandoned)
and swapped in by one last script, so replicas reload the group once, not per chunk.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from typing import Any

from redis.asyncio.cluster import RedisCluster
from redis.typing import EncodableT

from assignsvc.core.saved_groups import SavedGroup
from assignsvc.store.cluster import run_one
from assignsvc.store.connection import RedisClient
from assignsvc.store.keys import Keyspace
from assignsvc.store.protocols import WriteConflict
from assignsvc.store.redis_errors import store_errors

UPLOAD_TTL_S = 3600
SCAN_BATCH = 10_000
NOTICE_PREFIX = "group:"  # a notice id with ':' is never an experiment id

# KEYS: descriptions, ids, revision, staging. ARGV: channel, id, expected ("" any existing,
# "new", or a revision), description JSON, op (create|update|replace|union|delete), n_add,
# then n_add ids to add, then ids to remove. Returns {0, size} or {1, found} (-1: none).
_WRITE_SCRIPT = """
local raw = redis.call('HGET', KEYS[1], ARGV[2])
local found = -1
if raw then found = tonumber(cjson.decode(raw)['revision'] or 0) end
local expected, op = ARGV[3], ARGV[5]
if expected == '' then
  if found == -1 then return {1, -1} end
elseif not ((expected == 'new' and found == -1) or tonumber(expected) == found) then
  return {1, found}
end
local size = 0
if op == 'delete' then
  redis.call('HDEL', KEYS[1], ARGV[2])
  redis.call('DEL', KEYS[2])
else
  if op == 'create' or op == 'replace' then redis.call('DEL', KEYS[2]) end
  if redis.call('EXISTS', KEYS[4]) == 1 then
    if op == 'replace' then redis.call('RENAME', KEYS[4], KEYS[2]) end
    if op == 'union' then
      redis.call('SUNIONSTORE', KEYS[2], KEYS[2], KEYS[4])
      redis.call('DEL', KEYS[4])
    end
  end
  local last_add = 6 + tonumber(ARGV[6])
  for i = 7, last_add, 5000 do
    redis.call('SADD', KEYS[2], unpack(ARGV, i, math.min(i + 4999, last_add)))
  end
  for i = last_add + 1, #ARGV, 5000 do
    redis.call('SREM', KEYS[2], unpack(ARGV, i, math.min(i + 4999, #ARGV)))
  end
  size = redis.call('SCARD', KEYS[2])
  local description = cjson.decode(ARGV[4])
  description['size'] = size
  redis.call('HSET', KEYS[1], ARGV[2], cjson.encode(description))
end
local rev = redis.call('INCR', KEYS[3])
redis.call('PUBLISH', ARGV[1], rev .. ' group:' .. ARGV[2])
return {0, size}
"""


def group_to_json(group: SavedGroup) -> str:
    """The stored description (the size is set by the write script)."""
    return json.dumps(
        {
            "id": group.id,
            "name": group.name,
            "size": group.size,
            "revision": group.revision,
            "create_time_ms": group.create_time_ms,
            "update_time_ms": group.update_time_ms,
        },
        separators=(",", ":"),
    )


def group_from_json(text: str | bytes) -> SavedGroup:
    """Parse a stored description."""
    doc = json.loads(text)
    return SavedGroup(
        id=doc["id"],
        name=doc["name"],
        size=int(doc.get("size", 0)),
        revision=int(doc.get("revision", 0)),
        create_time_ms=int(doc.get("create_time_ms", 0)),
        update_time_ms=int(doc.get("update_time_ms", 0)),
    )


class RedisSavedGroupStore:
    """SavedGroupStore on Redis (standalone or cluster)."""

    def __init__(self, redis: RedisClient, keys: Keyspace) -> None:
        self._redis = redis
        self._keys = keys
        self._write = redis.register_script(_WRITE_SCRIPT)

    async def _command(self, *command: EncodableT) -> Any:
        if isinstance(self._redis, RedisCluster):
            return await run_one(self._redis, command)
        return await self._redis.execute_command(*command)  # type: ignore[no-untyped-call, unused-ignore]  # unannotated in redis-py

    async def write(
        self,
        group_id: str,
        expected: int | str | None,
        op: str,
        *,
        description: SavedGroup | None = None,
        add: Sequence[str] = (),
        remove: Sequence[str] = (),
        upload: str = "",
    ) -> WriteConflict | int:
        """One atomic change (see _WRITE_SCRIPT); the group's new size, or the conflict."""
        keys = [
            self._keys.saved_groups,
            self._keys.saved_group_ids(group_id),
            self._keys.experiments_revision,
            self._keys.saved_group_upload(upload or "none"),
        ]
        args: list[EncodableT] = [
            self._keys.experiment_changes,
            group_id,
            "" if expected is None else expected,
            "" if description is None else group_to_json(description),
            op,
            len(add),
            *add,
            *remove,
        ]
        with store_errors("write saved group"):
            if isinstance(self._redis, RedisCluster):
                reply = await run_one(
                    self._redis, ("EVALSHA", self._write.sha, len(keys), *keys, *args), self._write.script
                )
            else:
                reply = await self._write(keys=keys, args=args)
        if int(reply[0]) == 1:
            return WriteConflict(group_id, int(reply[1]))
        return int(reply[1])

    async def stage(self, upload: str, ids: Sequence[str]) -> None:
        """Add ids to an upload's staging set (it expires UPLOAD_TTL_S after the last chunk)."""
        key = self._keys.saved_group_upload(upload)
        with store_errors("stage saved group ids"):
            if ids:
                await self._command("SADD", key, *ids)
            await self._command("EXPIRE", key, UPLOAD_TTL_S)

    async def discard(self, upload: str) -> None:
        """Drop an abandoned upload's staging set."""
        with store_errors("discard upload"):
            await self._command("DEL", self._keys.saved_group_upload(upload))

    async def get(self, group_id: str) -> SavedGroup | None:
        """One description, or None."""
        with store_errors("get saved group"):
            raw = await self._command("HGET", self._keys.saved_groups, group_id)
        return None if raw is None else group_from_json(raw)

    async def load_all(self) -> dict[str, SavedGroup]:
        """Every description (not the ids)."""
        with store_errors("load saved groups"):
            flat = await self._command("HGETALL", self._keys.saved_groups)
        items = flat.values() if isinstance(flat, dict) else flat[1::2]
        groups = [group_from_json(raw) for raw in items]
        return {g.id: g for g in groups}

    async def ids(self, group_id: str) -> AsyncIterator[list[bytes]]:
        """The group's ids in batches (SSCAN: ids present throughout the scan all come back)."""
        cursor: int | bytes = 0
        key = self._keys.saved_group_ids(group_id)
        while True:
            with store_errors("read saved group ids"):
                cursor, batch = await self._command("SSCAN", key, cursor, "COUNT", SCAN_BATCH)
            yield list(batch)
            if int(cursor) == 0:
                return
