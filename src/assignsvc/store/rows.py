"""Bulk access to assignment rows: export reads and preassigned writes.

Both work shard by shard (see store.keys), never by scanning the keyspace: an
experiment's rows are exactly the hashes `as:a:{experiment:0..shards-1}:version`.
Commands go out in pipelined batches through a runner (standalone Redis or Redis
Cluster) on the general-purpose connection pool, not on the Assign path's pipe.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio.cluster import RedisCluster

from assignsvc.core.model import Experiment
from assignsvc.errors import StoreUnavailableError
from assignsvc.store.claims import ARM_SLOTS, counter_field, pack_row, unpack_row
from assignsvc.store.cluster import run_commands
from assignsvc.store.fastpipe import Arg, FastScriptPipe, encode_command
from assignsvc.store.keys import Keyspace
from assignsvc.store.redis_errors import store_errors

Command = tuple[Arg, ...]
# (commands, source of the Lua script their EVALSHA run or None) -> replies, errors as values
Runner = Callable[[Sequence[Command], str | None], Awaitable[list[Any]]]

# One round trip carries at most this many commands and arguments: it bounds the memory
# of its replies and keeps it far below the Redis timeout (~50 ms of Lua at most).
COMMANDS_PER_BATCH = 256
ARGUMENTS_PER_BATCH = 20_000  # a preassign round trip: ~20k rows, ~0.2 s of Redis
BATCHES_IN_FLIGHT = 2
# Rows per preassign script call: Redis runs one script at a time, ~9 us per row into
# 244-row listpacks (measured), so this keeps each call near 2 ms and Assign's claims,
# queued behind it on the same Redis, never wait much longer than that.
ROWS_PER_CALL = 256
# Bulk round trips wait for Redis this long (a queued batch waits for the one ahead).
BULK_TIMEOUT_S = 10.0

# KEYS[1] rows, KEYS[2] arm counters, KEYS[3] participant -> stratum, KEYS[4] stratum counters.
# ARGV: the number of groups G; G headers (count n, counter field, stratum id or "", packed
# row), one per group of rows sharing an arm and a stratum; then every group's
# participant ids, in header order (distinct; at most ROWS_PER_CALL in all, so every
# unpack() stays far below the ~8000 values Lua takes).
# Stores each row only if the participant has none (the first write wins, as for Assign),
# counts what it stored, and returns {participant, stored row, ...} for the participants
# that already had one. One HMGET and one HSET per hash for the whole call, not per row:
# each redis.call costs microseconds of its own, and each field scans the listpack
# (measured over 1M rows: HSETNX + HSET per row, ~19 us of Redis per row; HMGET + HSET per
# (arm, stratum) group, ~10 us; per script call, ~7 us).
PREASSIGN_SCRIPT = """
local g = tonumber(ARGV[1])
local first = 2 + 4 * g
local found = redis.call('HMGET', KEYS[1], unpack(ARGV, first, #ARGV))
local rows, strata, existing = {}, {}, {}
local at = first
for k = 0, g - 1 do
  local h = 2 + 4 * k
  local n, arm, stratum, row = tonumber(ARGV[h]), ARGV[h + 1], ARGV[h + 2], ARGV[h + 3]
  local created = 0
  for _ = 1, n do
    local participant = ARGV[at]
    local old = found[at - first + 1]
    if old then
      existing[#existing + 1] = participant
      existing[#existing + 1] = old
    else
      rows[#rows + 1] = participant
      rows[#rows + 1] = row
      if stratum ~= '' then
        strata[#strata + 1] = participant
        strata[#strata + 1] = stratum
      end
      created = created + 1
    end
    at = at + 1
  end
  if created > 0 then
    redis.call('HINCRBY', KEYS[2], arm, created)
    redis.call('HINCRBY', KEYS[4], stratum .. ':' .. arm, created)
  end
end
if #rows > 0 then redis.call('HSET', KEYS[1], unpack(rows)) end
if #strata > 0 then redis.call('HSET', KEYS[3], unpack(strata)) end
return existing
"""
PREASSIGN_SHA = hashlib.sha1(PREASSIGN_SCRIPT.encode()).hexdigest()  # how Redis names the script


def pipe_runner(pipe: FastScriptPipe) -> Runner:
    """A Runner on one standalone Redis through a raw pipelined connection of its own (not
    the Assign path's), made with PREASSIGN_SCRIPT, the only script bulk commands run: they
    carry thousands of arguments, which redis-py packs about 3x slower (measured: its
    pack_command was the top cost of a preassign upload)."""

    async def run(commands: Sequence[Command], script: str | None) -> list[Any]:
        return await pipe.execute_loading_script([encode_command(*command) for command in commands])

    return run


def cluster_runner(cluster: RedisCluster) -> Runner:
    """A Runner on a Redis Cluster: every node at once, MOVED/ASK followed (store.cluster)."""

    async def run(commands: Sequence[Command], script: str | None) -> list[Any]:
        return await run_commands(cluster, commands, script)

    return run


def as_flat(reply: dict[bytes, bytes] | list[bytes]) -> list[bytes]:
    """An HGETALL reply as a flat list (hiredis gives one; redis-py, on a cluster, a dict)."""
    if isinstance(reply, dict):
        return [item for pair in reply.items() for item in pair]
    return reply


def as_dict(reply: dict[bytes, bytes] | list[bytes]) -> dict[bytes, bytes]:
    """An HGETALL reply as a dict, from redis-py (a dict) or hiredis (a flat list)."""
    if isinstance(reply, dict):
        return reply
    return dict(zip(reply[::2], reply[1::2], strict=True))


@dataclass(frozen=True, slots=True)
class ShardRows:
    """One storage shard's rows at one bucket version (raw Redis replies)."""

    shard: int
    rows: list[bytes]  # HGETALL as a flat list: participant id, packed row, participant id, ...
    strata: dict[bytes, bytes]  # participant id -> stratum id (empty unless preassigned with strata)


@dataclass(frozen=True, slots=True)
class StratumCounts:
    """Stored assignments per arm index in one stratum (key: canonical JSON, "" for none)."""

    stratum: str
    counts: list[int]


class AssignmentRows:
    """Export reads, preassigned writes and per-stratum counters, on any Runner."""

    def __init__(self, run: Runner, keys: Keyspace) -> None:
        self._run = run
        self._keys = keys

    async def _batched(self, operation: str, commands: Sequence[Command], script: str | None = None) -> list[Any]:
        """Replies of all commands, sent in round trips of bounded size, up to
        BATCHES_IN_FLIGHT at once (Redis runs one while the next is being encoded)."""
        batches, start = [], 0
        while start < len(commands):
            end, arguments = start, 0
            while (
                end < len(commands)
                and end - start < COMMANDS_PER_BATCH
                and (end == start or arguments + len(commands[end]) <= ARGUMENTS_PER_BATCH)
            ):
                arguments += len(commands[end])
                end += 1
            batches.append(commands[start:end])
            start = end
        gate = asyncio.Semaphore(BATCHES_IN_FLIGHT)

        async def send(batch: Sequence[Command]) -> list[Any]:
            async with gate:
                return await self._run(batch, script)

        with store_errors(operation):
            replies = [reply for batch in await asyncio.gather(*map(send, batches)) for reply in batch]
        for reply in replies:
            if isinstance(reply, Exception):
                raise StoreUnavailableError(f"could not {operation}: {reply}")
        return replies

    async def read_shards(
        self, experiment: Experiment, bucket_version: int, shards: Sequence[int], with_strata: bool
    ) -> list[ShardRows]:
        """Every row of the given shards (one HGETALL each, pipelined)."""
        commands: list[Command] = [
            ("HGETALL", self._keys.assignments(experiment.id, s, bucket_version)) for s in shards
        ]
        if with_strata:
            commands += [("HGETALL", self._keys.participant_strata(experiment.id, s, bucket_version)) for s in shards]
        replies = await self._batched("read assignments", commands)
        rows, strata = replies[: len(shards)], replies[len(shards) :] if with_strata else [{}] * len(shards)
        return [ShardRows(s, as_flat(r), as_dict(st)) for s, r, st in zip(shards, rows, strata, strict=True)]

    async def stored_rows(
        self, experiment: Experiment, ids_by_shard: Mapping[int, Sequence[str]]
    ) -> dict[str, tuple[int, int]]:
        """participant id -> (first_seen_ms, arm index) for those that have a row now."""
        shards = list(ids_by_shard)
        commands: list[Command] = [
            ("HMGET", self._keys.assignments(experiment.id, s, experiment.bucket_version), *ids_by_shard[s])
            for s in shards
        ]
        found: dict[str, tuple[int, int]] = {}
        for shard, reply in zip(shards, await self._batched("read assignments", commands), strict=True):
            for participant, row in zip(ids_by_shard[shard], reply, strict=True):
                if row is not None:
                    found[participant] = unpack_row(row)
        return found

    async def write_preassigned(
        self, experiment: Experiment, groups: Mapping[int, Mapping[tuple[int, str], Sequence[str]]], now_ms: int
    ) -> dict[str, tuple[int, int]]:
        """Store each row unless the participant already has one (then it keeps it);
        `groups` is shard -> (arm index, stratum id or "") -> participant ids. Returns
        participant -> (first_seen_ms, arm) for those that already had a row."""
        version = experiment.bucket_version
        commands: list[Command] = []
        for shard, shard_groups in groups.items():
            keys = (
                self._keys.assignments(experiment.id, shard, version),
                self._keys.arm_counts(experiment.id, shard, version),
                self._keys.participant_strata(experiment.id, shard, version),
                self._keys.stratum_counts(experiment.id, shard, version),
            )
            headers: list[Arg] = []
            ids: list[Arg] = []
            for (arm, stratum), participants in shard_groups.items():
                for start in range(0, len(participants), ROWS_PER_CALL):
                    part = participants[start : start + ROWS_PER_CALL]
                    if len(ids) + len(part) > ROWS_PER_CALL:
                        commands.append(("EVALSHA", PREASSIGN_SHA, 4, *keys, len(headers) // 4, *headers, *ids))
                        headers, ids = [], []
                    headers += (len(part), counter_field(experiment.phase, arm), stratum, pack_row(now_ms, arm))
                    ids += part
            if ids:
                commands.append(("EVALSHA", PREASSIGN_SHA, 4, *keys, len(headers) // 4, *headers, *ids))
        conflicts: dict[str, tuple[int, int]] = {}
        for reply in await self._batched("store preassigned participants", commands, PREASSIGN_SCRIPT):
            for i in range(0, len(reply), 2):
                conflicts[reply[i].decode()] = unpack_row(reply[i + 1])
        return conflicts

    async def stratum_counts(self, experiment: Experiment, bucket_version: int) -> dict[str, list[int]]:
        """stratum id -> assignments per arm index, summed over the shards."""
        commands: list[Command] = [
            ("HGETALL", self._keys.stratum_counts(experiment.id, s, bucket_version))
            for s in range(experiment.storage_shards)
        ]
        totals: dict[str, list[int]] = {}
        for reply in await self._batched("read stratum counters", commands):
            for field, count in as_dict(reply).items():
                stratum, _, arm = field.decode().rpartition(":")
                counts = totals.setdefault(stratum, [0] * len(experiment.arms))
                index = int(arm) % ARM_SLOTS  # counter_field: every phase counts in the stratum
                if index < len(counts):
                    counts[index] += int(count)
        return totals

    async def strata(self, experiment: Experiment) -> dict[str, str]:
        """stratum id -> stratum key (canonical JSON of its attributes)."""
        [reply] = await self._batched("read strata", [("HGETALL", self._keys.strata(experiment.id))])
        return {k.decode(): v.decode() for k, v in as_dict(reply).items()}

    async def stratum_totals(self, experiment: Experiment, bucket_version: int) -> list[StratumCounts]:
        """Per-stratum arm counts with the strata's keys, ordered by key."""
        counts = await self.stratum_counts(experiment, bucket_version)
        if not counts:
            return []
        names = await self.strata(experiment)
        totals = [StratumCounts(names.get(sid, "") if sid else "", c) for sid, c in counts.items()]
        return sorted(totals, key=lambda t: t.stratum)

    async def define_strata(self, experiment: Experiment, strata: Mapping[str, str]) -> None:
        """Record stratum id -> key for ids not yet recorded (before any row names them)."""
        if strata:
            args = [part for item in strata.items() for part in item]
            await self._batched("record strata", [("HSET", self._keys.strata(experiment.id), *args)])

    async def export_token_key(self) -> bytes:
        """The deployment's token-signing key, created by the first replica that asks."""
        key = self._keys.export_token_key
        replies = await self._batched(
            "read the export token key", [("SET", key, secrets.token_hex(32), "NX"), ("GET", key)]
        )
        return bytes(replies[1])
