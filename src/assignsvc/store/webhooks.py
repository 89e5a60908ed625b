"""Webhook definitions in Redis: one hash per webhook and an index of ids.

The hash splits what users set (`config`, JSON) from what delivery changes
(`enabled`, `disabled_reason`, `failed_events`), so the delivery scripts in
store.outbox update the latter with plain HSET / HINCRBY, never re-encoding JSON.
All keys carry the `{meta}` tag: one Redis Cluster slot, scripts stay atomic.
"""

from __future__ import annotations

import json
from typing import Any

from assignsvc.core.events import Webhook, webhook_from_dict, webhook_to_dict
from assignsvc.store.connection import RedisClient
from assignsvc.store.keys import Keyspace
from assignsvc.store.redis_errors import store_errors
from assignsvc.store.scripting import Scripts

_STATE_FIELDS = ("enabled", "disabled_reason", "failed_events")

# KEYS: index, webhook hash. ARGV: id, config, enabled. Returns 1, or 0 if the id is taken.
_CREATE = """
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
redis.call('HSET', KEYS[2], 'config', ARGV[2], 'enabled', ARGV[3], 'disabled_reason', '', 'failed_events', 0)
redis.call('ZADD', KEYS[1], 0, ARGV[1])
return 1
"""

# KEYS: webhook hash. ARGV: config, enabled ('' keeps it), reason. Returns 0 if it does not exist.
# Re-enabling clears the reason and the failure count.
# ARGV[4]: the config the caller read ("" for no check): a concurrent change answers 2
# and writes nothing (an update racing a rotation must not drop the new secret).
_SAVE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if ARGV[4] ~= '' and redis.call('HGET', KEYS[1], 'config') ~= ARGV[4] then return 2 end
redis.call('HSET', KEYS[1], 'config', ARGV[1])
if ARGV[2] == '1' then
  redis.call('HSET', KEYS[1], 'enabled', 1, 'disabled_reason', '', 'failed_events', 0)
elseif ARGV[2] == '0' then
  redis.call('HSET', KEYS[1], 'enabled', 0, 'disabled_reason', ARGV[3])
end
return 1
"""

# KEYS: index, webhook hash, its log, due. ARGV: id, delivery key prefix.
# Removes the webhook, its delivery log and its pending deliveries.
_DELETE = """
if redis.call('EXISTS', KEYS[2]) == 0 then return 0 end
for _, id in ipairs(redis.call('ZRANGE', KEYS[3], 0, -1)) do
  redis.call('DEL', ARGV[2] .. id)
  redis.call('ZREM', KEYS[4], id)
end
redis.call('DEL', KEYS[2], KEYS[3])
redis.call('ZREM', KEYS[1], ARGV[1])
return 1
"""

# KEYS: index. ARGV: webhook key prefix. Every webhook hash as a flat list, in id order.
_LOAD_ALL = """
local out = {}
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  table.insert(out, redis.call('HGETALL', ARGV[1] .. id))
end
return out
"""


def _decode(flat: list[Any]) -> Webhook:
    fields = {flat[i].decode(): flat[i + 1].decode() for i in range(0, len(flat), 2)}
    raw = json.loads(fields["config"])
    raw.update(
        enabled=fields.get("enabled") == "1",
        disabled_reason=fields.get("disabled_reason", ""),
        failed_events=int(fields.get("failed_events") or 0),
    )
    return webhook_from_dict(raw)


def _config(webhook: Webhook) -> str:
    raw = webhook_to_dict(webhook)
    for name in _STATE_FIELDS:
        raw.pop(name)
    return json.dumps(raw, sort_keys=True)


class RedisWebhookStore:
    """Webhook definitions shared by every replica."""

    def __init__(self, redis: RedisClient, keys: Keyspace) -> None:
        self._run = Scripts(redis)
        self._keys = keys
        self._create = self._run.register(_CREATE)
        self._save = self._run.register(_SAVE)
        self._delete = self._run.register(_DELETE)
        self._load_all = self._run.register(_LOAD_ALL)

    async def create(self, webhook: Webhook) -> bool:
        """Store a new webhook; False if its id is taken."""
        keys = [self._keys.webhook_index, self._keys.webhook(webhook.id)]
        with store_errors("create webhook"):
            reply = await self._run.run(self._create, keys, [webhook.id, _config(webhook), int(webhook.enabled)])
        return bool(reply)

    async def save(self, webhook: Webhook, *, set_enabled: bool, read: Webhook | None = None) -> bool | None:
        """Overwrite the config (and, if set_enabled, the enabled flag); False if it is gone,
        None (nothing written) if `read` is given and the stored config is no longer it."""
        enabled = ("1" if webhook.enabled else "0") if set_enabled else ""
        args = [_config(webhook), enabled, webhook.disabled_reason, _config(read) if read is not None else ""]
        with store_errors("save webhook"):
            outcome = int(await self._run.run(self._save, [self._keys.webhook(webhook.id)], args))
        return None if outcome == 2 else bool(outcome)

    async def get(self, webhook_id: str) -> Webhook | None:
        """One webhook, or None."""
        with store_errors("get webhook"):
            flat = await self._run.command("HGETALL", self._keys.webhook(webhook_id))
        if isinstance(flat, dict):  # RESP3 / cluster clients may answer a mapping
            flat = [x for pair in flat.items() for x in pair]
        return _decode(flat) if flat else None

    async def all(self) -> list[Webhook]:
        """Every webhook, by id."""
        with store_errors("list webhooks"):
            rows = await self._run.run(self._load_all, [self._keys.webhook_index], [self._keys.webhook("")])
        return [_decode(row) for row in rows]

    async def delete(self, webhook_id: str) -> bool:
        """Remove a webhook, its log and pending deliveries; False if it did not exist."""
        k = self._keys
        keys = [k.webhook_index, k.webhook(webhook_id), k.webhook_log(webhook_id), k.deliveries_due]
        with store_errors("delete webhook"):
            return bool(await self._run.run(self._delete, keys, [webhook_id, k.delivery_prefix]))
