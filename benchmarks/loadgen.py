"""A closed-loop gRPC load generator on grpc.aio with HDR latency histograms.

`concurrency` coroutines each send one Assign, await it, send the next, for
`duration_s`; errors are counted, never hidden. With `--processes N` the coroutines
are spread over N OS processes and their HDR histograms merged (one Python process
saturates one core long before a 16-core server does). Used by load_assign.py, and
usable by hand against any running server:

    python benchmarks/loadgen.py 127.0.0.1:50051 EXPERIMENT --concurrency 64 --processes 4 --duration 10
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import multiprocessing
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
    target: str,
    experiment_id: str,
    participant: Callable[[int], str],
    concurrency: int,
    duration_s: float,
    *,
    warmup_s: float = 0.5,
    histogram: HdrHistogram | None = None,
    attributes: dict[str, object] | None = None,
    metadata: tuple[tuple[str, str], ...] = (),
) -> LoadResult:
    """Closed-loop load; participant(i) names the i-th call's participant; every call
    carries `attributes` when given."""
    histogram = histogram if histogram is not None else HdrHistogram(1, 60_000_000, 3)
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
                if attributes is not None:
                    request.attributes.update(attributes)
                started = time.perf_counter()
                if measuring and started >= deadline:
                    return
                try:
                    await stub.Assign(request, timeout=10, metadata=metadata or None)
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
        rps=calls / elapsed,
        calls=calls,
        errors=errors,
        p50_us=histogram.get_value_at_percentile(50),
        p90_us=histogram.get_value_at_percentile(90),
        p99_us=histogram.get_value_at_percentile(99),
        max_us=histogram.get_max_value(),
    )


@dataclass(frozen=True)
class ProcessShare:
    """One load process's part of a multi-process run (picklable: no callables)."""

    target: str
    experiment_id: str
    id_prefix: str
    repeat_ids: int
    concurrency: int
    duration_s: float


def _run_share(share: ProcessShare) -> tuple[int, int, float, bytes]:
    """Run one process's share; (calls, errors, rps, encoded HDR histogram)."""
    histogram = HdrHistogram(1, 60_000_000, 3)
    prefix, repeat = share.id_prefix, share.repeat_ids
    ids = (lambda i: f"{prefix}{i % repeat}") if repeat else (lambda i: f"{prefix}{i}")
    result = asyncio.run(
        run_load(share.target, share.experiment_id, ids, share.concurrency, share.duration_s, histogram=histogram)
    )
    return result.calls, result.errors, result.rps, histogram.encode()


def run_load_processes(
    target: str,
    experiment_id: str,
    id_prefix: str,
    *,
    repeat_ids: int,
    concurrency: int,
    duration_s: float,
    processes: int,
) -> LoadResult:
    """The same closed loop from `processes` OS processes (concurrency split between them),
    histograms merged: what one Python process cannot generate, several can."""
    shares = [
        ProcessShare(
            target,
            experiment_id,
            f"{id_prefix}{p}-",
            repeat_ids,
            concurrency // processes + (1 if p < concurrency % processes else 0),
            duration_s,
        )
        for p in range(processes)
    ]
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        parts = pool.map(_run_share, [s for s in shares if s.concurrency > 0])
    merged = HdrHistogram(1, 60_000_000, 3)
    for _, _, _, encoded in parts:
        merged.decode_and_add(encoded)
    return LoadResult(
        rps=sum(rps for _, _, rps, _ in parts),
        calls=sum(c for c, _, _, _ in parts),
        errors=sum(e for _, e, _, _ in parts),
        p50_us=merged.get_value_at_percentile(50),
        p90_us=merged.get_value_at_percentile(90),
        p99_us=merged.get_value_at_percentile(99),
        max_us=merged.get_max_value(),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("target")
    parser.add_argument("experiment")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--repeat-ids", type=int, default=0, help="cycle over this many ids (0: always new ids)")
    parser.add_argument("--processes", type=int, default=1, help="load processes sharing the concurrency")
    args = parser.parse_args()
    result = run_load_processes(
        args.target,
        args.experiment,
        f"load-{time.time_ns()}-",
        repeat_ids=args.repeat_ids,
        concurrency=args.concurrency,
        duration_s=args.duration,
        processes=args.processes,
    )
    print(json.dumps(asdict(result), indent=2))


if __name__ == "__main__":
    main()
