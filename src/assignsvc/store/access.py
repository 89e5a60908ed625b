"""Datasources and API key records in Redis, in the `{meta}` slot beside the experiments.

Every write is one script that stores the record and bumps and publishes the same
revision counter and channel as experiment writes (the notice names `access:`), so a
new or revoked key reaches every replica's key ring exactly as fast as an experiment
change does (milliseconds; at most one refresh interval if a message is lost).
"""

from __future__ import annotations

import json
from typing import Any

from assignsvc.core.access import ApiKey, Datasource, RateLimit, Scope
from assignsvc.store.connection import RedisClient
from assignsvc.store.keys import Keyspace
from assignsvc.store.redis_errors import store_errors
from assignsvc.store.scripting import Scripts

ACCESS_NOTICE = "access:"  # a notice id with ':' is never an experiment id

# KEYS: records hash, revision. ARGV: channel, field, JSON, mode ("new": only if absent,
# "existing": only if present, "any"). Returns 1 if written, 0 if the mode refused.
_WRITE_SCRIPT = """
local present = redis.call('HEXISTS', KEYS[1], ARGV[2]) == 1
if (ARGV[4] == 'new' and present) or (ARGV[4] == 'existing' and not present) then return 0 end
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
local rev = redis.call('INCR', KEYS[2])
redis.call('PUBLISH', ARGV[1], rev .. ' access:')
return 1
"""


def key_to_json(key: ApiKey) -> str:
    """The stored record of a key (its digest, never the key)."""
    return json.dumps(
        {
            "id": key.id,
            "datasource": key.datasource,
            "digest": key.digest,
            "scopes": sorted(s.value for s in key.scopes),
            "name": key.name,
            "hint": key.hint,
            "rate_per_s": key.rate_limit.per_second,
            "burst": key.rate_limit.burst,
            "create_time_ms": key.create_time_ms,
            "revoke_time_ms": key.revoke_time_ms,
        },
        separators=(",", ":"),
        sort_keys=True,
    )


def key_from_json(text: str | bytes) -> ApiKey:
    """Parse a stored key record."""
    doc = json.loads(text)
    return ApiKey(
        id=doc["id"],
        datasource=doc["datasource"],
        digest=doc["digest"],
        scopes=frozenset(Scope(s) for s in doc["scopes"]),
        name=doc.get("name", ""),
        hint=doc.get("hint", ""),
        rate_limit=RateLimit(float(doc.get("rate_per_s", 0)), int(doc.get("burst", 0))),
        create_time_ms=int(doc.get("create_time_ms", 0)),
        revoke_time_ms=int(doc.get("revoke_time_ms", 0)),
    )


def datasource_to_json(datasource: Datasource) -> str:
    """The stored description of a datasource."""
    return json.dumps(
        {"id": datasource.id, "name": datasource.name, "create_time_ms": datasource.create_time_ms},
        separators=(",", ":"),
    )


def datasource_from_json(text: str | bytes) -> Datasource:
    """Parse a stored datasource description."""
    doc = json.loads(text)
    return Datasource(doc["id"], doc.get("name", ""), int(doc.get("create_time_ms", 0)))


class RedisAccessStore:
    """Datasources, key records and last-used times (standalone or cluster)."""

    def __init__(self, redis: RedisClient, keys: Keyspace) -> None:
        self._scripts = Scripts(redis)
        self._keys = keys
        self._write = self._scripts.register(_WRITE_SCRIPT)

    async def _put(self, records: str, field: str, text: str, mode: str) -> bool:
        with store_errors("write access record"):
            written = await self._scripts.run(
                self._write,
                [records, self._keys.experiments_revision],
                [self._keys.experiment_changes, field, text, mode],
            )
        return int(written) == 1

    async def create_datasource(self, datasource: Datasource) -> bool:
        """Store a new datasource; False if its id exists."""
        return await self._put(self._keys.datasources, datasource.id, datasource_to_json(datasource), "new")

    async def datasources(self) -> list[Datasource]:
        """Every datasource, by id."""
        with store_errors("read datasources"):
            raw: dict[Any, Any] = await self._scripts.command("HGETALL", self._keys.datasources)
        return sorted((datasource_from_json(v) for v in _pairs(raw).values()), key=lambda d: d.id)

    async def create_key(self, key: ApiKey) -> bool:
        """Store a new key record; False if its id exists."""
        return await self._put(self._keys.api_keys, key.id, key_to_json(key), "new")

    async def save_key(self, key: ApiKey) -> bool:
        """Replace an existing key record (revocation); False if it is gone."""
        return await self._put(self._keys.api_keys, key.id, key_to_json(key), "existing")

    async def keys(self) -> list[ApiKey]:
        """Every key record, revoked ones included, by id."""
        with store_errors("read API keys"):
            raw: dict[Any, Any] = await self._scripts.command("HGETALL", self._keys.api_keys)
        return sorted((key_from_json(v) for v in _pairs(raw).values()), key=lambda k: k.id)

    async def record_use(self, used_ms: dict[str, int]) -> None:
        """Remember when keys were last used (a max: replicas' clocks and flushes interleave)."""
        if not used_ms:
            return
        with store_errors("record API key use"):
            current = await self._scripts.command("HMGET", self._keys.api_keys_used, *used_ms)
            newer: list[str | int] = []
            for (key_id, ms), held in zip(used_ms.items(), current, strict=True):
                if held is None or int(held) < ms:
                    newer += [key_id, ms]
            if newer:
                await self._scripts.command("HSET", self._keys.api_keys_used, *newer)

    async def last_used(self) -> dict[str, int]:
        """Key id -> when it was last used (ms), for keys ever used."""
        with store_errors("read API key use"):
            raw: dict[Any, Any] = await self._scripts.command("HGETALL", self._keys.api_keys_used)
        return {k: int(v) for k, v in _pairs(raw).items()}


def _pairs(raw: Any) -> dict[str, Any]:
    """HGETALL's reply as str -> value, whether the client decoded it into a dict or a flat list."""
    items = raw.items() if isinstance(raw, dict) else zip(raw[::2], raw[1::2], strict=True)
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in items}
