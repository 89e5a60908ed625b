"""Hash functions that map participants to points in [0, 1).

Each function here is frozen: a stored assignment or a migrating GrowthBook user
depends on every bit of it. A different mapping is a new HashAlgorithm value.
"""

from __future__ import annotations

import mmh3

_FNV_OFFSET = 0x811C9DC5
_FNV_PRIME = 0x01000193
_U32 = 0xFFFFFFFF
_TWO_POW_32 = 4294967296.0
# Seed for the storage-shard hash; distinct from bucketing (seed 0) so that the shard
# a participant's row lives in says nothing about its arm.
_SHARD_SEED = 0x5A17


def fnv1a32(text: str) -> int:
    """FNV-1a 32 over UTF-16 code units, as GrowthBook's JS SDK (charCodeAt) does."""
    h = _FNV_OFFSET
    if text.isascii():
        for unit in text.encode("ascii"):
            h = ((h ^ unit) * _FNV_PRIME) & _U32
        return h
    data = text.encode("utf-16-le", "surrogatepass")
    for i in range(0, len(data), 2):
        h = ((h ^ (data[i] | (data[i + 1] << 8))) * _FNV_PRIME) & _U32
    return h


def gb_hash(seed: str, value: str, version: int) -> float:
    """GrowthBook's hash(seed, value, version) for versions 1 and 2."""
    if version == 2:
        return (fnv1a32(str(fnv1a32(seed + value))) % 10000) / 10000
    if version == 1:
        return (fnv1a32(value + seed) % 1000) / 1000
    raise ValueError(f"unknown GrowthBook hash version {version}")


def murmur3_unit(text: str) -> float:
    """MurmurHash3 x86_32 (seed 0) of the UTF-8 bytes of text, as a float64 in [0, 1)."""
    return mmh3.hash(text, 0, False) / _TWO_POW_32


def storage_shard(participant_id: str, shards: int) -> int:
    """The storage shard (0 .. shards-1) that holds a participant's row."""
    return mmh3.hash(participant_id, _SHARD_SEED, False) % shards
