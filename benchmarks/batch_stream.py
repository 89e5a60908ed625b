"""BatchAssign and StreamAssign throughput, each beside its baseline from the same run.

Starts a private Redis (unix socket, as `make run`) and one `assignsvc serve`, then,
for several interleaved rounds:

- Redis pipeline baseline: 4 asyncio clients, each sending pipelines of 100
  `SET key value NX GET` (what redis-benchmark -P 100 -c 4 does), from Python through
  the same thin client the service uses (no redis-benchmark binary ships with the
  embedded server; `--redis-benchmark PATH` adds that figure when you have one);
- BatchAssign: 1000 new participants per message, `--batch-concurrency` messages in
  flight; the figure is assignments per second;
- unary Assign at concurrency 1 and StreamAssign on one stream (the client keeps
  writing while it reads): messages per second, new participants in both.

    python benchmarks/batch_stream.py [--rounds 3] [--duration 3]

Targets: BatchAssign >= 50% of the pipelined SET NX GET rate;
StreamAssign >= 2x unary Assign at concurrency 1. Medians over rounds are reported.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parent))
from load_assign import create_experiment, server_process

from assignsvc.store.fastpipe import FastScriptPipe, encode_command
from assignsvc.store.redis_server import RedisServerProcess
from assignsvc.v1 import assignment_service_pb2 as apb
from assignsvc.v1 import assignment_service_pb2_grpc as agrpc

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


async def redis_pipeline_rate(url: str, duration_s: float, clients: int = 4, depth: int = 100) -> float:
    """SET NX GET per second, `clients` connections each with `depth` commands per pipeline."""
    run = time.time_ns()
    done = 0

    async def client(c: int) -> None:
        nonlocal done
        pipe = FastScriptPipe(url, "return 1", 5.0)
        try:
            deadline = time.perf_counter() + duration_s
            i = 0
            while time.perf_counter() < deadline:
                commands = [encode_command("SET", f"b:{run}:{c}:{i + k}", "v", "NX", "GET") for k in range(depth)]
                await pipe.execute(commands)
                i += depth
                done += depth
        finally:
            await pipe.close()

    await asyncio.gather(*(client(c) for c in range(clients)))
    return done / duration_s


async def batch_rate(target: str, duration_s: float, concurrency: int, size: int = 1000) -> float:
    """Assignments per second through BatchAssign of `size` new participants each."""
    run = time.time_ns()
    done = 0
    async with grpc.aio.insecure_channel(target) as channel:
        stub = agrpc.AssignmentServiceStub(channel)

        async def worker(w: int) -> None:
            nonlocal done
            deadline = time.perf_counter() + duration_s
            n = 0
            while time.perf_counter() < deadline:
                requests = [
                    apb.AssignRequest(experiment_id="bench", participant_id=f"b{run}-{w}-{n + k}") for k in range(size)
                ]
                reply = await stub.BatchAssign(apb.BatchAssignRequest(requests=requests))
                assert all(r.WhichOneof("result") == "assignment" for r in reply.results)
                n += size
                done += size

        await asyncio.gather(*(worker(w) for w in range(concurrency)))
    return done / duration_s


async def unary_rate(target: str, duration_s: float) -> float:
    """Assign calls per second, one at a time."""
    run = time.time_ns()
    done = 0
    async with grpc.aio.insecure_channel(target) as channel:
        stub = agrpc.AssignmentServiceStub(channel)
        deadline = time.perf_counter() + duration_s
        while time.perf_counter() < deadline:
            await stub.Assign(apb.AssignRequest(experiment_id="bench", participant_id=f"u{run}-{done}"))
            done += 1
    return done / duration_s


async def stream_rate(target: str, duration_s: float) -> float:
    """Responses per second on one StreamAssign stream."""
    run = time.time_ns()
    received = 0
    stop = asyncio.Event()

    async def requests() -> AsyncIterator[apb.StreamAssignRequest]:
        n = 0
        while not stop.is_set():
            yield apb.StreamAssignRequest(experiment_id="bench", participant_id=f"s{run}-{n}")
            n += 1

    async with grpc.aio.insecure_channel(target) as channel:
        call = agrpc.AssignmentServiceStub(channel).StreamAssign(requests())
        started = time.perf_counter()
        async for response in call:
            assert response.result.WhichOneof("result") == "assignment"
            received += 1
            if time.perf_counter() - started >= duration_s:
                break
        elapsed = time.perf_counter() - started
        stop.set()
        call.cancel()
    return received / elapsed


def redis_benchmark_rate(binary: str, socket: Path, duration_s: float) -> float:
    """redis-benchmark -P 100 -c 4 SET NX GET, if the caller has the binary."""
    out = subprocess.run(
        [
            binary,
            "-s",
            str(socket),
            "-P",
            "100",
            "-c",
            "4",
            "-n",
            str(int(200_000 * duration_s)),
            "-q",
            "--csv",
            "-r",
            "1000000",
            "SET",
            "key:__rand_int__",
            "v",
            "NX",
            "GET",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return float(out.strip().splitlines()[-1].split(",")[1].strip('"'))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--batch-concurrency", type=int, default=4)
    parser.add_argument("--redis-benchmark", help="path to redis-benchmark / valkey-benchmark (optional)")
    args = parser.parse_args()
    samples: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="assignsvc-bench-") as tmp:
        socket = Path(tmp) / "redis.sock"
        redis = RedisServerProcess(Path(tmp) / "redis", unix_socket=socket)
        redis.start()
        try:
            serve = [sys.executable, "-m", "assignsvc", "serve", "--port", "0", "--redis-url", redis.url]
            with server_process(serve) as target:
                create_experiment(target)
                for round_no in range(args.rounds):
                    figures = {
                        "redis pipeline SET NX GET (P100, 4 clients)": asyncio.run(
                            redis_pipeline_rate(redis.url, args.duration)
                        ),
                        f"BatchAssign x1000, {args.batch_concurrency} in flight": asyncio.run(
                            batch_rate(target, args.duration, args.batch_concurrency)
                        ),
                        "unary Assign, concurrency 1": asyncio.run(unary_rate(target, args.duration)),
                        "StreamAssign, one stream": asyncio.run(stream_rate(target, args.duration)),
                    }
                    if args.redis_benchmark:
                        figures["redis-benchmark SET NX GET (P100, 4 clients)"] = redis_benchmark_rate(
                            args.redis_benchmark, socket, args.duration
                        )
                    for name, value in figures.items():
                        samples.setdefault(name, []).append(value)
                        print(f"round {round_no + 1} {name:<48} {value:>10,.0f}/s", file=sys.stderr)
        finally:
            redis.stop()

    medians = {name: statistics.median(values) for name, values in samples.items()}
    names = list(medians)
    base_redis, batch, unary, stream = (medians[n] for n in names[:4])
    print(f"\n{'figure':<50}{'per second':>12}{'ratio':>9}  target")
    print(f"{names[0]:<50}{base_redis:>12,.0f}{'':>9}  baseline")
    print(f"{names[1]:<50}{batch:>12,.0f}{batch / base_redis:>9.0%}  >= 50% of the pipeline")
    print(f"{names[2]:<50}{unary:>12,.0f}{'':>9}  baseline")
    print(f"{names[3]:<50}{stream:>12,.0f}{stream / unary:>8.1f}x  >= 2x unary")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "batch_stream.json"
    out.write_text(
        json.dumps(
            {
                "machine": {"cpus": os.cpu_count()},
                "rounds": args.rounds,
                "duration_s": args.duration,
                "medians_per_s": medians,
                "samples_per_s": samples,
                "batch_ratio_to_redis_pipeline": batch / base_redis,
                "stream_ratio_to_unary": stream / unary,
            },
            indent=2,
        )
    )
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
