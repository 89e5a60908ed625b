"""Redis memory per stored assignment: our sharded-hash layout against one key per assignment.

Starts a private Redis with the embedded service's settings, stores N assignments
(20-byte participant ids, the size the target is stated for) through the real claim script
(RedisAssignmentStore.claim_many, batches of 1000), and reads INFO memory's
used_memory before and after. Then, on an emptied server, stores the same N rows as
one string key per assignment (`as:a:EXP:PARTICIPANT` -> packed row), the obvious
home-made table, as the baseline of the same run.

    python benchmarks/memory.py [--assignments 1000000]

How to read it: bytes/assignment = (used_memory after - before) / N. It includes
Redis' own per-key overhead and the per-arm counters, i.e. everything the layout
costs. The target is <= 48 bytes; the rows stay compact only while each shard hash
is a listpack (<= hash-max-listpack-entries rows, values <= hash-max-listpack-value
bytes): with 4096 shards per bucket version that is up to 2M assignments per
experiment version at the embedded server's 512 (see docs/performance.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from redis.asyncio import Redis

from assignsvc.core.model import Arm, Experiment
from assignsvc.store.assignments import RedisAssignmentStore
from assignsvc.store.claims import pack_row
from assignsvc.store.keys import Keyspace
from assignsvc.store.redis_server import RedisServerProcess

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
BATCH = 1000
EXPERIMENT = Experiment(
    id="memory-bench", name="memory-bench", arms=(Arm("control", "control", 0.5), Arm("treatment", "treatment", 0.5))
)


def participant(i: int) -> str:
    """A 20-byte participant id."""
    return f"user-{i:015d}"


async def used_memory(redis: Redis) -> int:
    info = await redis.info("memory")
    return int(info["used_memory"])


async def sharded_layout(redis: Redis, n: int) -> tuple[int, float, dict[str, int]]:
    """Bytes used by n assignments through the real claim path, seconds taken, encodings seen."""
    store = RedisAssignmentStore(redis, Keyspace())
    before = await used_memory(redis)
    started = time.perf_counter()
    now_ms = int(time.time() * 1000)
    for start in range(0, n, BATCH):
        requests = [(EXPERIMENT, participant(i), i % 2, now_ms) for i in range(start, min(n, start + BATCH))]
        await store.claim_many(requests)
    elapsed = time.perf_counter() - started
    encodings: dict[str, int] = {}
    for shard in range(0, EXPERIMENT.storage_shards, 64):  # a sample of the shard hashes
        encoding = await redis.object("encoding", Keyspace().assignments(EXPERIMENT.id, shard, 0))
        name = encoding.decode() if isinstance(encoding, bytes) else str(encoding)
        encodings[name] = encodings.get(name, 0) + 1
    return await used_memory(redis) - before, elapsed, encodings


async def key_per_assignment(redis: Redis, n: int) -> int:
    """Bytes used by the same n rows stored as one string key each."""
    before = await used_memory(redis)
    now_ms = int(time.time() * 1000)
    for start in range(0, n, BATCH):
        async with redis.pipeline(transaction=False) as pipe:
            for i in range(start, min(n, start + BATCH)):
                pipe.set(f"as:a:{EXPERIMENT.id}:{participant(i)}", pack_row(now_ms, i % 2), nx=True)
            await pipe.execute()
    return await used_memory(redis) - before


async def measure(url: str, n: int) -> dict[str, object]:
    redis = Redis.from_url(url)
    try:
        await redis.flushall()
        sharded, seconds, encodings = await sharded_layout(redis, n)
        await redis.flushall()
        baseline = await key_per_assignment(redis, n)
        await redis.flushall()
    finally:
        await redis.aclose()
    return {
        "assignments": n,
        "participant_id_bytes": len(participant(0)),
        "sharded_bytes_per_assignment": sharded / n,
        "key_per_assignment_bytes": baseline / n,
        "ratio": sharded / baseline,
        "claim_many_rows_per_s": n / seconds,
        "shard_encodings_sampled": encodings,
        "target_bytes": 48,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--assignments", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="assignsvc-mem-") as tmp:
        redis = RedisServerProcess(Path(tmp) / "redis", unix_socket=Path(tmp) / "redis.sock", appendonly=False)
        redis.start()
        try:
            result = asyncio.run(measure(redis.url, args.assignments))
        finally:
            redis.stop()
    verdict = "PASS" if result["sharded_bytes_per_assignment"] <= 48 else "MISS"  # type: ignore[operator]
    print(
        f"{result['assignments']:,} assignments, {result['participant_id_bytes']}-byte participant ids", file=sys.stderr
    )
    print(f"\n{'layout':<42}{'bytes/assignment':>18}")
    print(f"{'sharded hashes (claim script)':<42}{result['sharded_bytes_per_assignment']:>18.1f}")
    print(f"{'one string key per assignment (baseline)':<42}{result['key_per_assignment_bytes']:>18.1f}")
    print(
        f"\nratio {result['ratio']:.2f}; target <= 48 bytes: {verdict}; "
        f"shard encodings sampled: {result['shard_encodings_sampled']}; "
        f"claim_many {result['claim_many_rows_per_s']:,.0f} rows/s"
    )
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "memory.json"
    out.write_text(json.dumps({"machine": {"cpus": os.cpu_count()}, **result}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
