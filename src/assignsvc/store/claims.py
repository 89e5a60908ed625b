"""The claim codec: the claim scripts, their keys, the row packing, and encode/decode.

Each row is a field of a small hash (see store.keys): participant id -> an integer
packing first_seen_ms and the arm index, which Redis stores in a listpack as a
compact integer. The script reads before it writes, so the first arm stored wins
for every caller, on every replica, whatever they proposed.

Why one module: the transports (store.transports, store.cluster), the assignment
stores, export and preassign all read or write these rows and scripts, so a change
of the row format or of a script's reply touches this module only.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any, Protocol, TypeVar

from assignsvc.core.hashing import storage_shard
from assignsvc.core.model import Experiment
from assignsvc.errors import StoreUnavailableError
from assignsvc.store.keys import Keyspace
from assignsvc.store.protocols import Claim, ClaimKind, ClaimRequest

Row = TypeVar("Row", bound=tuple[Any, ...])

# Arms are capped at 100 (core.validation); 1024 leaves room without changing the packing.
ARM_SLOTS = 1024
# Per-phase counts, one dict per bucket version: phase -> assignments per arm index.
PhaseCounts = dict[int, list[int]]

# One claim, as a Lua function over KEYS[first..last]: KEYS[first] rows at the current
# version, KEYS[first + 1] its arm counters, the rest rows at each version below
# min_bucket_version, newest first. `row` is the packed row to write, or "" to only look.
# Appends its reply to `out` at `n` and returns the new length: 0 absent, (1, row)
# existing, (2, row, i) blocked (i: the key's index counted from first, 3 for the newest
# old version), 3 created. Flat, not a table per claim: a batch's reply is then one
# array, which costs Redis less to build and to encode (measured in docs/performance.md).
# The row is read before any write (not HSETNX): a returning participant's claim then
# runs no write command, so it is answered while Redis refuses writes (maxmemory with
# noeviction, a read-only replica). Blocked versions are checked first, as GrowthBook
# does: holding any arm from a version below min_bucket_version blocks, even beside an
# arm at the current version; with no older versions (min_bucket_version 0) the loop is empty.
_CLAIM_FUNCTION = """
local hget = 'HGET'
local function claim(out, n, first, last, participant, row, arm)
  for i = first + 2, last do
    local old = redis.call(hget, KEYS[i], participant)
    if old then
      out[n + 1], out[n + 2], out[n + 3] = 2, old, i - first + 1
      return n + 3
    end
  end
  local current = redis.call(hget, KEYS[first], participant)
  if current then
    out[n + 1], out[n + 2] = 1, current
    return n + 2
  end
  if row == '' then
    out[n + 1] = 0
    return n + 1
  end
  redis.call('HSET', KEYS[first], participant, row)
  redis.call('HINCRBY', KEYS[first + 1], arm, 1)
  out[n + 1] = 3
  return n + 1
end
"""
# One claim per call: KEYS as above; ARGV participant, packed row or "", counter field
# (counter_field: the arm index in phase 0, so counters written before phases are phase 0's).
# Its reply is the claim's: {0}, {1, row}, {2, row, i} or {3}.
CLAIM_SCRIPT = _CLAIM_FUNCTION + "local out = {}\nclaim(out, 0, 1, #KEYS, ARGV[1], ARGV[2], ARGV[3])\nreturn out\n"
# Many claims per call, in order (standalone Redis only: the keys span slots). ARGV holds
# (number of keys, participant, packed row or "", counter field) per claim, KEYS each
# claim's keys one after another; the reply is every claim's reply, one after another in
# one flat array (to_claims walks it). A claim script call costs Redis ~15x a SET
# (measured: 14.5 us vs 1.0 us per call): one call per CLAIMS_PER_CALL claims is what lets
# a batch approach the pipelined SET NX GET rate.
CLAIM_BATCH_SCRIPT = (
    _CLAIM_FUNCTION
    + """
local out, n, first = {}, 0, 1
for j = 1, #ARGV, 4 do
  local last = first + tonumber(ARGV[j]) - 1
  n = claim(out, n, first, last, ARGV[j + 1], ARGV[j + 2], ARGV[j + 3])
  first = last + 1
end
return out
"""
)
CLAIM_SHA = hashlib.sha1(CLAIM_SCRIPT.encode()).hexdigest()  # how Redis names it (EVALSHA)
# Claims per CLAIM_BATCH_SCRIPT call: Redis runs one call at a time, so this bounds how
# long one call holds it (about 100 x a few us).
CLAIMS_PER_CALL = 100


def pack_row(first_seen_ms: int, arm_index: int) -> int:
    """One integer per row: Redis stores it in 9 bytes or fewer inside a listpack."""
    return first_seen_ms * ARM_SLOTS + arm_index


def unpack_row(row: bytes | int) -> tuple[int, int]:
    """(first_seen_ms, arm_index) from a packed row."""
    first_seen_ms, arm_index = divmod(int(row), ARM_SLOTS)
    return first_seen_ms, arm_index


def keep_rows(rows: list[Row], arm: int | None, since_ms: int | None, until_ms: int | None) -> list[Row]:
    """The rows (tuples holding a packed row second) of that arm index, first seen in
    [since_ms, until_ms); the list itself when there are no filters."""
    if arm is not None:
        rows = [row for row in rows if row[1] % ARM_SLOTS == arm]
    if since_ms is not None:
        rows = [row for row in rows if row[1] // ARM_SLOTS >= since_ms]
    if until_ms is not None:
        rows = [row for row in rows if row[1] // ARM_SLOTS < until_ms]
    return rows


def lookup_claim(experiment: Experiment, row: bytes | int | None) -> Claim:
    """The Claim of a plain HGET of the current version's row (None: nothing stored)."""
    if row is None:
        return Claim(ClaimKind.ABSENT, bucket_version=experiment.bucket_version)
    first_seen, arm = unpack_row(row)
    return Claim(ClaimKind.EXISTING, arm, first_seen, experiment.bucket_version)


def counter_field(phase: int, arm_index: int) -> int:
    """The counter hash field that counts an arm's new assignments in a phase; phase 0's
    is the arm index itself, which is what every counter written before phases holds."""
    return phase * ARM_SLOTS + arm_index


def sum_phase_counts(shards: Sequence[dict[bytes, bytes]] | Sequence[dict[int, int]], arm_count: int) -> PhaseCounts:
    """phase -> per-arm totals from each shard's counter hash (HGETALL replies)."""
    counts: PhaseCounts = {}
    for shard in shards:
        for name, count in shard.items():
            phase, index = divmod(int(name), ARM_SLOTS)
            if index < arm_count:
                counts.setdefault(phase, [0] * arm_count)[index] += int(count)
    return counts


def total_counts(phases: PhaseCounts, arm_count: int) -> list[int]:
    """Per-arm totals over every phase."""
    return [sum(counts[i] for counts in phases.values()) for i in range(arm_count)]


# ClaimKeys kept by a ClaimCodec (experiment versions); past it, they are built anew.
MAX_CLAIM_KEY_SETS = 4096
_SHARD_MARK = "\x00"  # stands for the shard in a key template: no prefix or id holds it


class ClaimKeys:
    """The claim script's KEYS (see CLAIM_SCRIPT) for one experiment version, any participant.

    The names come from Keyspace, built once with a mark for the shard and split there.
    """

    __slots__ = ("affixes", "count", "shards")

    def __init__(self, keys: Keyspace, experiment: Experiment) -> None:
        experiment_id, version = experiment.id, experiment.bucket_version
        names = [
            keys.assignments(experiment_id, _SHARD_MARK, version),
            keys.arm_counts(experiment_id, _SHARD_MARK, version),
        ]
        names += [
            keys.assignments(experiment_id, _SHARD_MARK, old) for old in reversed(range(experiment.min_bucket_version))
        ]  # newest first
        affixes = [name.split(_SHARD_MARK) for name in names]
        if any(len(parts) != 2 for parts in affixes):
            raise ValueError(f"a key of experiment {experiment_id!r} holds no single shard mark")
        self.affixes = [(head, tail) for head, tail in affixes]  # each key's text around the shard
        self.shards = experiment.storage_shards
        self.count = len(affixes)  # numkeys of the EVALSHA

    def of(self, participant_id: str) -> list[str]:
        """KEYS for one participant: its shard's rows, counters and older versions' rows."""
        shard = str(storage_shard(participant_id, self.shards))
        return [head + shard + tail for head, tail in self.affixes]


class ClaimCodec:
    """Encodes claim requests as the claim scripts' KEYS and ARGV; keeps each experiment
    version's ClaimKeys, so that a claim costs a shard hash and string joins, not Keyspace calls."""

    def __init__(self, keys: Keyspace) -> None:
        self.keys = keys
        self._claim_keys: dict[tuple[str, int, int, int], ClaimKeys] = {}

    def claim_keys(self, experiment: Experiment) -> ClaimKeys:
        """The claim script's KEYS for any participant of this experiment version."""
        version = (experiment.id, experiment.bucket_version, experiment.min_bucket_version, experiment.storage_shards)
        found = self._claim_keys.get(version)
        if found is None:
            if len(self._claim_keys) >= MAX_CLAIM_KEY_SETS:  # deleted experiments and old versions
                self._claim_keys.clear()
            found = self._claim_keys[version] = ClaimKeys(self.keys, experiment)
        return found

    def call(self, request: ClaimRequest) -> tuple[list[str], list[str | int]]:
        """(KEYS, ARGV) of CLAIM_SCRIPT for one request."""
        experiment, participant_id, proposed, now_ms = request
        keys = self.claim_keys(experiment).of(participant_id)
        return keys, _claim_args(participant_id, proposed, now_ms, experiment.phase)

    def batch_calls(self, requests: Sequence[ClaimRequest]) -> list[tuple[list[str], list[str | int]]]:
        """(KEYS, ARGV) of CLAIM_BATCH_SCRIPT for every CLAIMS_PER_CALL requests, in order.

        ClaimKeys.of inlined: this runs once per claim of every batch."""
        calls = []
        last: Experiment | None = None
        affixes: list[tuple[str, str]] = []
        shards = count = phase = 0
        for start in range(0, len(requests), CLAIMS_PER_CALL):
            names: list[str] = []
            args: list[str | int] = []
            for experiment, participant_id, proposed, now_ms in requests[start : start + CLAIMS_PER_CALL]:
                if experiment is not last:
                    keys, last = self.claim_keys(experiment), experiment
                    affixes, shards, count, phase = keys.affixes, keys.shards, keys.count, experiment.phase
                shard = str(storage_shard(participant_id, shards))
                names += [head + shard + tail for head, tail in affixes]
                args.append(count)
                args += _claim_args(participant_id, proposed, now_ms, phase)
            calls.append((names, args))
        return calls


def _claim_args(participant_id: str, proposed_arm: int | None, now_ms: int, phase: int) -> list[str | int]:
    if proposed_arm is None:
        return [participant_id, "", 0]
    return [participant_id, pack_row(now_ms, proposed_arm), counter_field(phase, proposed_arm)]


def to_claim(experiment: Experiment, reply: Sequence[int | bytes], now_ms: int, proposed: int | None) -> Claim:
    """The Claim of one claim script reply (see CLAIM_SCRIPT)."""
    code = int(reply[0])
    if code == 1:
        first_seen, arm = unpack_row(reply[1])
        return Claim(ClaimKind.EXISTING, arm, first_seen, experiment.bucket_version)
    if code == 2:
        first_seen, arm = unpack_row(reply[1])
        # KEYS[3] holds version min_bucket_version - 1, KEYS[4] the one before, ...
        old_version = experiment.min_bucket_version - 1 - (int(reply[2]) - 3)
        return Claim(ClaimKind.BLOCKED, arm, first_seen, old_version)
    if code == 3 and proposed is not None:
        return Claim(ClaimKind.CREATED, proposed, now_ms, experiment.bucket_version)
    return Claim(ClaimKind.ABSENT, bucket_version=experiment.bucket_version)


def to_claims(requests: Sequence[ClaimRequest], replies: Sequence[Any]) -> list[Claim]:
    """The Claims of one flat claim script reply per request, in order (each claim's reply
    items one after another, as CLAIM_BATCH_SCRIPT answers); StoreUnavailableError when
    the replies do not hold exactly one reply per request."""
    claims: list[Claim] = []
    append = claims.append
    new = tuple.__new__  # Claim(...) without the NamedTuple's slow __new__ (see app.assign)
    CREATED, EXISTING = ClaimKind.CREATED, ClaimKind.EXISTING  # noqa: N806 - enum reads once (see app.assign)
    i = 0
    try:
        for experiment, _, proposed, now_ms in requests:
            code = replies[i]
            if code == 3 and proposed is not None:  # the common cases first: a new row, a returning one
                append(new(Claim, (CREATED, proposed, now_ms, experiment.bucket_version)))
                i += 1
            elif code == 1:
                first_seen, arm = divmod(int(replies[i + 1]), ARM_SLOTS)
                append(new(Claim, (EXISTING, arm, first_seen, experiment.bucket_version)))
                i += 2
            elif code == 2:
                append(to_claim(experiment, replies[i : i + 3], now_ms, proposed))
                i += 3
            else:
                append(Claim(ClaimKind.ABSENT, bucket_version=experiment.bucket_version))
                i += 1
    except IndexError:  # a reply cut short
        pass
    if i != len(replies) or len(claims) != len(requests):
        raise StoreUnavailableError(f"store answered {len(claims)} of {len(requests)} claims")
    return claims


class ClaimTransport(Protocol):
    """Sends claims to Redis: redis-py (store.transports), the fast pipe (store.transports)
    or a Redis Cluster (store.cluster)."""

    codec: ClaimCodec

    async def run(self, claims: Sequence[ClaimRequest]) -> list[Any]:
        """Each claim's script reply items, one claim after another in one flat list (see
        to_claims); a failure or an error reply raises StoreUnavailableError."""
        ...
