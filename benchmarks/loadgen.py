"""A closed-loop gRPC load generator on grpc.aio with HDR latency histograms.

`concurrency` coroutines each send one Assign, await it, send the next, for
`duration_s`; errors are counted, never hidden. Used by load_assign.py, and usable
by hand against any running server:

    python benchmarks/loadgen.py 127.0.0.1:50051 EXPERIMENT --concurrency 16 --duration 10
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import grpc
from hdrh.histogram import HdrHistogram

from assignsvc.v1 import assignment_service_pb2 as apb
from assignsvc.v1 import assignment_service_pb2_grpc as agrpc


@dataclass
class LoadResult:
    """Throughput and latency of one load run (latencies in microseconds)."""

    rps: float
    calls: int
    errors: int
    p50_us: float
    p90_us: float
    p99_us: float
    max_us: float


async def run_load(
    target: str, experiment_id: str, participant: Callable[[int], str],
    concurrency: int, duration_s: float, *, warmup_s: float = 0.5,
) -> LoadResult:
    """Closed-loop load; participant(i) names the i-th call's participant."""
    histogram = HdrHistogram(1, 60_000_000, 3)
    counter = itertools.count()
    errors = 0
    calls = 0
    async with grpc.aio.insecure_channel(target) as channel:
        stub = agrpc.AssignmentServiceStub(channel)
        measuring = False
        deadline = 0.0

        async def worker() -> None:
            nonlocal errors, calls
            while True:
                request = apb.AssignRequest(experiment_id=experiment_id, participant_id=participant(next(counter)))
                started = time.perf_counter()
                if measuring and started >= deadline:
                    return
                try:
                    await stub.Assign(request, timeout=10)
                    ok = True
                except grpc.aio.AioRpcError:
                    ok = False
                if measuring:
                    calls += 1
                    if ok:
                        histogram.record_value(max(1, int((time.perf_counter() - started) * 1e6)))
                    else:
                        errors += 1

        async def warmup() -> None:
            nonlocal measuring, deadline
            await asyncio.sleep(warmup_s)
            deadline = time.perf_counter() + duration_s
            measuring = True

        start = time.perf_counter()
        await asyncio.gather(warmup(), *(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start - warmup_s
    return LoadResult(
        rps=calls / elapsed, calls=calls, errors=errors,
        p50_us=histogram.get_value_at_percentile(50), p90_us=histogram.get_value_at_percentile(90),
        p99_us=histogram.get_value_at_percentile(99), max_us=histogram.get_max_value(),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("target")
    parser.add_argument("experiment")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--repeat-ids", type=int, default=0, help="cycle over this many ids (0: always new ids)")
    args = parser.parse_args()
    prefix = f"load-{time.time_ns()}-"
    ids = (lambda i: f"{prefix}{i % args.repeat_ids}") if args.repeat_ids else (lambda i: f"{prefix}{i}")
    result = asyncio.run(run_load(args.target, args.experiment, ids, args.concurrency, args.duration))
    print(json.dumps(asdict(result), indent=2))


if __name__ == "__main__":
    main()
