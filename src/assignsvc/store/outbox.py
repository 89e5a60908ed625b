"""The webhook outbox in Redis: the events stream and one durable record per delivery.

Events: a stream (`{meta}:events`) that the experiment scripts append to; the
dispatcher reads it through one consumer group, so each entry goes to one replica,
and an entry whose replica died is taken over with XAUTOCLAIM. Fan-out turns one
entry into one delivery per matching webhook and acknowledges it in the same script;
delivery ids are derived from (event, webhook), so a fan-out run twice creates nothing twice.

Deliveries: a hash each, plus `due`, a sorted set of pending ids by the time they
may next be tried. Claiming moves a delivery's due time past a lease, atomically,
so exactly one replica makes each attempt; a replica killed mid-attempt leaves the
delivery due again when the lease ends, and another (or the restarted one) retries it.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from typing import Any

from redis.exceptions import ResponseError

from assignsvc.store.connection import RedisClient
from assignsvc.store.keys import Keyspace
from assignsvc.store.redis_errors import store_errors
from assignsvc.store.scripting import Scripts

GROUP = "webhooks"
LOG_LIMIT = 1000  # finished deliveries kept per webhook (the newest)
# Old deliveries one write removes at most: a log never trimmed for long (a webhook whose
# format drops most events) shrinks over several writes instead of stalling Redis in one.
TRIM_PER_WRITE = 100

# The log's oldest finished deliveries past LOG_LIMIT, at most TRIM_PER_WRITE of them.
_TRIM = f"""
local function trim(log, prefix)
  local extra = math.min(redis.call('ZCARD', log) - {LOG_LIMIT}, {TRIM_PER_WRITE})
  if extra > 0 then
    for _, old in ipairs(redis.call('ZRANGE', log, 0, extra - 1)) do
      if redis.call('HGET', prefix .. old, 'state') ~= 'pending' then
        redis.call('DEL', prefix .. old)
        redis.call('ZREM', log, old)
      end
    end
  end
end
"""

# KEYS: events, due, then (delivery, log) per delivery. ARGV: group, entry id, now, then
# (id, webhook id, event id, event type, payload, attempts) per delivery. Attempts '' is a
# delivery to make; otherwise it is recorded as dropped with those attempts (the reason),
# which finishes it: the log is trimmed then, as when an attempt finishes one.
_FANOUT = (
    _TRIM
    + """
local n = (#ARGV - 3) / 6
for j = 0, n - 1 do
  local dk, lk, a = KEYS[3 + 2 * j], KEYS[4 + 2 * j], 4 + 6 * j
  if redis.call('EXISTS', dk) == 0 then
    redis.call('HSET', dk, 'webhook_id', ARGV[a + 1], 'event_id', ARGV[a + 2], 'event_type', ARGV[a + 3],
      'payload', ARGV[a + 4], 'created_ms', ARGV[3], 'state', 'pending', 'attempt', 0,
      'next_ms', ARGV[3], 'lease', '', 'attempts', '[]')
    if ARGV[a + 5] == '' then
      redis.call('ZADD', KEYS[2], ARGV[3], ARGV[a])
    else
      redis.call('HSET', dk, 'state', 'dropped', 'next_ms', '', 'attempts', ARGV[a + 5])
    end
    redis.call('ZADD', lk, 0, ARGV[a])
    if ARGV[a + 5] ~= '' then trim(lk, string.sub(dk, 1, #dk - #ARGV[a])) end
  end
end
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
return n
"""
)

# KEYS: due. ARGV: now, lease ms, limit, lease token, delivery key prefix.
# Takes up to `limit` due deliveries: each gets the token and is due again only when
# the lease ends. A delivery still holding an old lease lost its worker mid-attempt.
_CLAIM = """
local now = tonumber(ARGV[1])
local out = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[3]))) do
  local dk = ARGV[5] .. id
  if redis.call('EXISTS', dk) == 0 then
    redis.call('ZREM', KEYS[1], id)
  else
    local lost = redis.call('HGET', dk, 'lease')
    if lost ~= '' then
      local log = redis.call('HGET', dk, 'attempts')
      local entry = cjson.encode({attempt = tonumber(redis.call('HGET', dk, 'attempt')), time_ms = now,
        status = 0, latency_ms = 0, error = 'no result: the worker making this attempt was lost'})
      if log == '[]' then log = '[' .. entry .. ']' else log = string.sub(log, 1, -2) .. ',' .. entry .. ']' end
      redis.call('HSET', dk, 'attempts', log)
    end
    local attempt = redis.call('HINCRBY', dk, 'attempt', 1)
    redis.call('HSET', dk, 'lease', ARGV[4])
    redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), id)
    local f = redis.call('HMGET', dk, 'webhook_id', 'event_id', 'event_type', 'payload')
    table.insert(out, {id, f[1], f[2], f[3], f[4], attempt})
  end
end
return out
"""

# KEYS: due, delivery, webhook, log. ARGV: id, token, outcome, attempt JSON, next ms,
# disable reason, disable after, delivery key prefix.
# outcome: retry | succeeded | failed | gone | dropped. Returns 0 if the lease was lost.
_COMPLETE = (
    _TRIM
    + """
if redis.call('HGET', KEYS[2], 'lease') ~= ARGV[2] then return 0 end
local log = redis.call('HGET', KEYS[2], 'attempts')
if log == '[]' then log = '[' .. ARGV[4] .. ']' else log = string.sub(log, 1, -2) .. ',' .. ARGV[4] .. ']' end
redis.call('HSET', KEYS[2], 'attempts', log, 'lease', '')
local outcome = ARGV[3]
if outcome == 'retry' then
  redis.call('HSET', KEYS[2], 'next_ms', ARGV[5])
  redis.call('ZADD', KEYS[1], ARGV[5], ARGV[1])
  return 1
end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[2], 'state', outcome == 'gone' and 'failed' or outcome, 'next_ms', '')
local live = redis.call('EXISTS', KEYS[3]) == 1
if live and outcome == 'succeeded' then
  redis.call('HSET', KEYS[3], 'failed_events', 0)
elseif live and outcome == 'gone' then
  redis.call('HSET', KEYS[3], 'enabled', 0, 'disabled_reason', ARGV[6])
elseif live and outcome == 'failed' then
  local failed = redis.call('HINCRBY', KEYS[3], 'failed_events', 1)
  local limit = tonumber(ARGV[7])
  if limit > 0 and failed >= limit and redis.call('HGET', KEYS[3], 'enabled') == '1' then
    redis.call('HSET', KEYS[3], 'enabled', 0, 'disabled_reason', ARGV[6])
  end
end
trim(KEYS[4], ARGV[8])
return 1
"""
)

# KEYS: log. ARGV: start ('+' or '(' .. id), count, delivery key prefix. Newest first.
_READ_LOG = """
local out = {}
for _, id in ipairs(redis.call('ZREVRANGEBYLEX', KEYS[1], ARGV[1], '-', 'LIMIT', 0, tonumber(ARGV[2]))) do
  table.insert(out, {id, redis.call('HGETALL', ARGV[3] .. id)})
end
return out
"""

# KEYS: marker, events. ARGV: experiment JSON, detail JSON. Appends experiment.warning
# only the first time (SET NX), so replicas checking the same experiment raise it once.
_WARN_ONCE = """
if not redis.call('SET', KEYS[1], '1', 'NX') then return 0 end
redis.call('XADD', KEYS[2], '*', 'type', 'experiment.warning', 'experiment', ARGV[1], 'detail', ARGV[2])
return 1
"""


@dataclasses.dataclass(frozen=True, slots=True)
class StreamEvent:
    """One entry of the events stream."""

    entry_id: str
    type: str
    experiment: str  # the stored experiment JSON ('' for webhook.test)
    detail: str  # JSON object: the event's own `data` fields
    target: str  # webhook.test: the one webhook it is for

    @property
    def ordinal(self) -> str:
        """The entry id as a fixed-width string that sorts in stream order."""
        ms, _, seq = self.entry_id.partition("-")
        return f"{int(ms):013d}{int(seq or 0):05d}"

    @property
    def time_ms(self) -> int:
        """When Redis appended it."""
        return int(self.entry_id.partition("-")[0])


@dataclasses.dataclass(frozen=True, slots=True)
class NewDelivery:
    """One event for one webhook, as fan-out creates it."""

    id: str
    webhook_id: str
    event_id: str
    event_type: str
    payload: str
    # Set when the webhook gets nothing for this event (its format has no name for it):
    # recorded at once as dropped, with this as the error the log shows.
    not_sent: str = ""

    def drop_record(self, now_ms: int) -> list[dict[str, Any]]:
        """The attempts list of a delivery dropped before any attempt."""
        return [{"attempt": 0, "error": self.not_sent, "latency_ms": 0, "status": 0, "time_ms": now_ms}]


@dataclasses.dataclass(frozen=True, slots=True)
class ClaimedDelivery:
    """A delivery this worker holds the lease of: make attempt `attempt`."""

    id: str
    webhook_id: str
    event_id: str
    event_type: str
    payload: str
    attempt: int


@dataclasses.dataclass(frozen=True, slots=True)
class DeliveryRecord:
    """A delivery as the log shows it; attempts are dicts (attempt, time_ms, status, latency_ms, error)."""

    id: str
    webhook_id: str
    event_id: str
    event_type: str
    payload: str
    state: str
    attempt: int
    created_ms: int
    next_ms: int | None
    attempts: list[dict[str, Any]]


def _event(entry: Any) -> StreamEvent:
    entry_id, raw = entry
    if isinstance(raw, list):
        raw = {raw[i]: raw[i + 1] for i in range(0, len(raw), 2)}
    fields = {k.decode(): v.decode() for k, v in raw.items()}
    return StreamEvent(
        entry_id.decode(),
        fields.get("type", ""),
        fields.get("experiment", ""),
        fields.get("detail", "{}"),
        fields.get("target", ""),
    )


def _record(delivery_id: bytes, flat: list[bytes]) -> DeliveryRecord:
    f = {flat[i].decode(): flat[i + 1].decode() for i in range(0, len(flat), 2)}
    attempts = json.loads(f.get("attempts") or "[]")
    return DeliveryRecord(
        id=delivery_id.decode(),
        webhook_id=f["webhook_id"],
        event_id=f["event_id"],
        event_type=f["event_type"],
        payload=f["payload"],
        state=f["state"],
        attempt=int(f["attempt"]),
        created_ms=int(f["created_ms"]),
        next_ms=int(f["next_ms"]) if f.get("next_ms") else None,
        attempts=attempts if isinstance(attempts, list) else [],  # cjson writes an empty list as {}
    )


class RedisOutbox:
    """The events stream and the deliveries, shared by every replica."""

    def __init__(self, redis: RedisClient, keys: Keyspace) -> None:
        self._run = Scripts(redis)
        self._keys = keys
        self._fanout = self._run.register(_FANOUT)
        self._claim = self._run.register(_CLAIM)
        self._complete = self._run.register(_COMPLETE)
        self._read_log = self._run.register(_READ_LOG)
        self._warn_once = self._run.register(_WARN_ONCE)

    async def ensure_group(self) -> None:
        """Create the dispatcher's consumer group (from the stream's start) unless it exists."""
        with store_errors("create the webhook consumer group"):
            try:
                await self._run.command("XGROUP", "CREATE", self._keys.events, GROUP, "0", "MKSTREAM")
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    async def read_events(self, consumer: str, count: int) -> list[StreamEvent]:
        """Entries no consumer has been given yet, now given to `consumer`."""
        with store_errors("read webhook events"):
            reply = await self._run.command(
                "XREADGROUP", "GROUP", GROUP, consumer, "COUNT", count, "STREAMS", self._keys.events, ">"
            )
        if not reply:
            return []
        # redis-py parses XREADGROUP into [[stream, [(id, {field: value}), ...]]].
        return [_event(entry) for _, entries in reply for entry in entries]

    async def take_over(self, consumer: str, min_idle_ms: int, count: int) -> list[StreamEvent]:
        """Entries another consumer was given but did not finish in min_idle_ms (it died)."""
        with store_errors("take over webhook events"):
            reply = await self._run.command(
                "XAUTOCLAIM", self._keys.events, GROUP, consumer, min_idle_ms, "0", "COUNT", count
            )
        return [_event(e) for e in reply[1] if e is not None and e[1] is not None]

    async def fan_out(self, event: StreamEvent, deliveries: Sequence[NewDelivery], now_ms: int) -> None:
        """Create each delivery (unless it exists) and acknowledge the entry, atomically."""
        keys = [self._keys.events, self._keys.deliveries_due]
        args: list[str | int] = [GROUP, event.entry_id, now_ms]
        for d in deliveries:
            keys += [self._keys.delivery(d.id), self._keys.webhook_log(d.webhook_id)]
            attempts = json.dumps(d.drop_record(now_ms), sort_keys=True) if d.not_sent else ""
            args += [d.id, d.webhook_id, d.event_id, d.event_type, d.payload, attempts]
        with store_errors("fan out a webhook event"):
            await self._run.run(self._fanout, keys, args)

    async def claim(self, now_ms: int, lease_ms: int, limit: int, token: str) -> list[ClaimedDelivery]:
        """Up to `limit` due deliveries, each leased to `token` for lease_ms."""
        args: list[str | int] = [now_ms, lease_ms, limit, token, self._keys.delivery_prefix]
        with store_errors("claim webhook deliveries"):
            rows = await self._run.run(self._claim, [self._keys.deliveries_due], args)
        return [
            ClaimedDelivery(r[0].decode(), r[1].decode(), r[2].decode(), r[3].decode(), r[4].decode(), int(r[5]))
            for r in rows
        ]

    async def complete(
        self,
        claimed: ClaimedDelivery,
        token: str,
        outcome: str,
        attempt: dict[str, Any],
        *,
        next_ms: int = 0,
        reason: str = "",
        disable_after: int = 0,
    ) -> bool:
        """Record the attempt and its outcome; False if the lease had passed to another worker."""
        k = self._keys
        keys = [
            k.deliveries_due,
            k.delivery(claimed.id),
            k.webhook(claimed.webhook_id),
            k.webhook_log(claimed.webhook_id),
        ]
        args: list[str | int] = [
            claimed.id,
            token,
            outcome,
            json.dumps(attempt, sort_keys=True),
            next_ms,
            reason,
            disable_after,
            k.delivery_prefix,
        ]
        with store_errors("record a webhook attempt"):
            return bool(await self._run.run(self._complete, keys, args))

    async def deliveries(self, webhook_id: str, count: int, after_id: str) -> list[DeliveryRecord]:
        """A webhook's deliveries, newest first, starting after `after_id` ('' = the newest)."""
        start = "(" + after_id if after_id else "+"
        args: list[str | int] = [start, count, self._keys.delivery_prefix]
        with store_errors("read webhook deliveries"):
            rows = await self._run.run(self._read_log, [self._keys.webhook_log(webhook_id)], args)
        return [_record(r[0], r[1]) for r in rows if r[1]]

    async def add_test_event(self, webhook_id: str, detail: str) -> str:
        """Append a webhook.test event for one webhook; its stream entry id."""
        with store_errors("send a test event"):
            entry = await self._run.command(
                "XADD",
                self._keys.events,
                "*",
                "type",
                "webhook.test",
                "experiment",
                "",
                "detail",
                detail,
                "target",
                webhook_id,
            )
        return str(entry.decode() if isinstance(entry, bytes) else entry)

    async def take_turn(self, name: str, period_ms: int) -> bool:
        """True for the first replica to ask in each period (a SET NX PX marker)."""
        with store_errors("take a turn"):
            return bool(await self._run.command("SET", self._keys.turn(name), "1", "NX", "PX", period_ms))

    async def warn_once(
        self, experiment_id: str, bucket_version: int, experiment_json: str, detail: str, phase: int = 0
    ) -> bool:
        """Append experiment.warning unless already raised for this bucket version and phase;
        True if appended."""
        keys = [self._keys.srm_marker(experiment_id, bucket_version, phase), self._keys.events]
        with store_errors("raise an experiment warning"):
            return bool(await self._run.run(self._warn_once, keys, [experiment_json, detail]))
