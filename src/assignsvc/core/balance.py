"""Balanced randomization of a known list of participants (PREASSIGNED experiments).

Within each stratum the arm counts are the largest-remainder apportionment of the
weights (|count - weight x n| < 1 for every arm), and which participant gets which
arm is a seeded shuffle. The shuffle runs over the participants sorted by id, so the
result depends only on the experiment's seed, the stratum and the set of
participants: never on the order of the upload. The generator is our own
(SplitMix64), so that the same inputs give the same arms on every Python version.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence

_MASK64 = (1 << 64) - 1


def apportion(weights: Sequence[float], total: int) -> list[int]:
    """Integer counts summing to `total`, each within 1 of weight x total (Hamilton's
    largest-remainder method; ties go to the lower arm index). Weights need not sum to 1."""
    weight_sum = sum(weights)
    if total <= 0 or weight_sum <= 0:
        return [0] * len(weights)
    quotas = [w * total / weight_sum for w in weights]
    counts = [int(q) for q in quotas]
    by_remainder = sorted(range(len(weights)), key=lambda i: (-(quotas[i] - counts[i]), i))
    for i in by_remainder[: total - sum(counts)]:
        counts[i] += 1
    return counts


def counts_to_add(weights: Sequence[float], existing: Sequence[int], new: int) -> list[int]:
    """How many of `new` participants each arm gets so that existing + added is as close
    to the weights as integers allow (an arm already above its share gets none)."""
    target = apportion(weights, sum(existing) + new)
    add = [max(0, t - e) for t, e in zip(target, existing, strict=True)]
    while sum(add) > new:  # some arm was above its share: take back where the result exceeds it most
        givers = [j for j in range(len(add)) if add[j] > 0]
        i = max(givers, key=lambda j: (existing[j] + add[j] - target[j], -j))
        add[i] -= 1
    return add


class SplitMix64:
    """A tiny, fully specified 64-bit generator (Steele, Lea and Flood, 2014)."""

    __slots__ = ("_state",)

    def __init__(self, seed: int) -> None:
        self._state = seed & _MASK64

    def next(self) -> int:
        """The next 64-bit output."""
        self._state = (self._state + 0x9E3779B97F4A7C15) & _MASK64
        z = self._state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
        return z ^ (z >> 31)

    def below(self, n: int) -> int:
        """A number in [0, n); the modulo bias is below n / 2^64 (nil for any real n)."""
        return self.next() % n


def stratum_seed(experiment_seed: str, bucket_version: int, stratum: str, existing: Sequence[int]) -> int:
    """The generator seed of one upload into one stratum; the existing counts take part
    so that a second upload of new participants draws fresh numbers."""
    material = json.dumps([experiment_seed, bucket_version, stratum, list(existing)]).encode()
    return int.from_bytes(hashlib.sha256(material).digest()[:8], "big")


def assign_balanced(participant_ids: Sequence[str], counts: Sequence[int], seed: int) -> dict[str, int]:
    """participant id -> arm index: arm i appears counts[i] times, shuffled (Fisher-Yates)
    over the ids in sorted order. sum(counts) must equal len(participant_ids)."""
    arms = [i for i, count in enumerate(counts) for _ in range(count)]
    if len(arms) != len(participant_ids):
        raise ValueError(f"{len(arms)} arm slots for {len(participant_ids)} participants")
    rng = SplitMix64(seed)
    for i in range(len(arms) - 1, 0, -1):
        j = rng.below(i + 1)
        arms[i], arms[j] = arms[j], arms[i]
    return dict(zip(sorted(participant_ids), arms, strict=True))


def stratum_key(attributes: Mapping[str, str]) -> str:
    """A stratum's stored name: its attributes as canonical JSON ("" for no strata)."""
    if not attributes:
        return ""
    return json.dumps(dict(sorted(attributes.items())), separators=(",", ":"), ensure_ascii=False)


def stratum_id(key: str) -> str:
    """A short stored id for a stratum key (64-bit BLAKE2b, hex): rows and counters name
    strata by it, and one dictionary per experiment maps it back to the attributes."""
    return hashlib.blake2b(key.encode(), digest_size=8).hexdigest()
