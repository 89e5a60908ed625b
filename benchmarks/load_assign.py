"""Assign throughput and latency beside an empty-handler baseline, measured in one run.

Starts a private Redis (unix socket, AOF everysec, as `make run` does), one
`assignsvc serve` process and one empty-handler server (benchmarks/empty_server.py),
then runs the same closed-loop load against each, interleaved for several rounds so
machine noise hits both alike. Reports medians over rounds and each figure's ratio to
the empty handler. Absolute numbers depend on the machine; the ratios are the result.

    python benchmarks/load_assign.py [--rounds 3] [--duration 3] [--concurrency 1 16]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hdrh.histogram import HdrHistogram
from loadgen import LoadResult, run_load
from redis.asyncio import Redis

from assignsvc.store.redis_server import RedisServerProcess
from assignsvc.v1 import experiment_pb2 as epb
from assignsvc.v1 import experiment_service_pb2 as espb
from assignsvc.v1 import experiment_service_pb2_grpc as egrpc

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
SERVING = re.compile(r"serving on [\d.]+:(\d+)")


@contextmanager
def serving_process(args: list[str], env: dict[str, str] | None = None) -> Iterator[tuple[str, int]]:
    """Run a server process; yield (host:port, pid) once it logs that it is serving."""
    proc = subprocess.Popen(
        args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})}
    )
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            if match := SERVING.search(line):
                break
        else:
            raise RuntimeError(f"{args} did not start")
        # keep reading its log, or a chatty server would block on a full pipe
        threading.Thread(target=proc.stderr.read, daemon=True).start()
        yield f"127.0.0.1:{match.group(1)}", proc.pid
    finally:
        proc.terminate()
        proc.wait(15)
        if proc.stderr is not None:
            proc.stderr.close()


@contextmanager
def server_process(args: list[str], env: dict[str, str] | None = None) -> Iterator[str]:
    """serving_process without the pid: yield host:port."""
    with serving_process(args, env) as (target, _):
        yield target


async def redis_round_trip(url: str, duration_s: float) -> LoadResult:
    """Sequential PINGs through redis.asyncio on the same socket: the Redis round trip baseline."""
    histogram = HdrHistogram(1, 60_000_000, 3)
    client = Redis.from_url(url)
    try:
        await client.ping()
        calls = 0
        started = time.perf_counter()
        while (now := time.perf_counter()) - started < duration_s:
            await client.ping()
            histogram.record_value(max(1, int((time.perf_counter() - now) * 1e6)))
            calls += 1
    finally:
        await client.aclose()
    return LoadResult(
        rps=calls / duration_s,
        calls=calls,
        errors=0,
        p50_us=histogram.get_value_at_percentile(50),
        p90_us=histogram.get_value_at_percentile(90),
        p99_us=histogram.get_value_at_percentile(99),
        max_us=histogram.get_max_value(),
    )


def create_experiment(target: str) -> None:
    with grpc.insecure_channel(target) as channel:
        egrpc.ExperimentServiceStub(channel).CreateExperiment(
            espb.CreateExperimentRequest(
                experiment=epb.Experiment(
                    id="bench",
                    status=epb.EXPERIMENT_STATUS_RUNNING,
                    arms=[epb.Arm(id="control", weight=0.5), epb.Arm(id="treatment", weight=0.5)],
                )
            )
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per measurement")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--repeat-ids", type=int, default=1000, help="participants cycled in the repeat scenario")
    args = parser.parse_args()

    samples: dict[tuple[str, int], list[LoadResult]] = {}
    with tempfile.TemporaryDirectory(prefix="assignsvc-bench-") as tmp:
        redis = RedisServerProcess(Path(tmp) / "redis", unix_socket=Path(tmp) / "redis.sock")
        redis.start()
        try:
            # INFO logging stays on: the "serving on" line is how we learn the port
            serve = [sys.executable, "-m", "assignsvc", "serve", "--port", "0", "--redis-url", redis.url]
            with (
                server_process(serve) as assign_target,
                server_process(serve, {"ASSIGNSVC_REDIS_PIPELINES": "0"}) as unpipelined_target,
                server_process([sys.executable, str(HERE / "empty_server.py")]) as empty_target,
            ):
                create_experiment(assign_target)  # both servers share the Redis, so the experiment
                run_id = time.time_ns()
                for round_no in range(args.rounds):
                    rtt = asyncio.run(redis_round_trip(redis.url, min(args.duration, 1.0)))
                    samples.setdefault(("redis round trip (PING)", 1), []).append(rtt)
                    for concurrency in args.concurrency:
                        scenarios = {
                            "empty handler": (empty_target, lambda i: f"e{i}"),
                            "assign, new participants": (
                                assign_target,
                                lambda i, r=round_no, c=concurrency: f"n-{run_id}-{r}-{c}-{i}",
                            ),
                            "assign, repeat participants": (
                                assign_target,
                                lambda i: f"r-{run_id}-{i % args.repeat_ids}",
                            ),
                            "assign, new, 1 EVALSHA per call": (
                                unpipelined_target,
                                lambda i, r=round_no, c=concurrency: f"u-{run_id}-{r}-{c}-{i}",
                            ),
                        }
                        for name, (target, ids) in scenarios.items():
                            result = asyncio.run(run_load(target, "bench", ids, concurrency, args.duration))
                            samples.setdefault((name, concurrency), []).append(result)
                            print(
                                f"round {round_no + 1} c={concurrency:<3} {name:<28} {result.rps:8.0f} rps "
                                f"p50 {result.p50_us:6.0f}us p99 {result.p99_us:6.0f}us errors {result.errors}",
                                file=sys.stderr,
                            )
        finally:
            redis.stop()

    rows = []
    for (name, concurrency), results in samples.items():
        baseline = samples.get(("empty handler", concurrency), results)
        rps = statistics.median(r.rps for r in results)
        base_rps = statistics.median(r.rps for r in baseline)
        rows.append(
            {
                "scenario": name,
                "concurrency": concurrency,
                "rps_median": rps,
                "rps_ratio_to_empty": rps / base_rps,
                "p50_us_median": statistics.median(r.p50_us for r in results),
                "p99_us_median": statistics.median(r.p99_us for r in results),
                "errors": sum(r.errors for r in results),
                "rounds": [asdict(r) for r in results],
            }
        )
    print(f"\n{'scenario':<30}{'conc':>5}{'RPS':>9}{'vs empty':>10}{'p50 us':>9}{'p99 us':>9}{'errors':>8}")
    for row in rows:
        print(
            f"{row['scenario']:<30}{row['concurrency']:>5}{row['rps_median']:>9.0f}"
            f"{row['rps_ratio_to_empty']:>9.0%} {row['p50_us_median']:>8.0f}{row['p99_us_median']:>9.0f}"
            f"{row['errors']:>8}"
        )
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "load_assign.json"
    out.write_text(
        json.dumps(
            {"machine": {"cpus": os.cpu_count()}, "rounds": args.rounds, "duration_s": args.duration, "rows": rows},
            indent=2,
        )
    )
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
