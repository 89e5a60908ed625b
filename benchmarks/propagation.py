"""How fast a change made through one replica reaches the others, measured over real processes.

Starts a private Redis (unix socket, AOF everysec, as `make run` does) and `--replicas`
`assignsvc serve` processes on it, creates one RUNNING experiment through replica 0
(after `--extra-experiments` untouched ones, default none), then makes `--updates`
changes one after another: each an UpdateExperiment of `coverage` (update_mask
["coverage"], guarded by the previous etag) sent to a rotating replica (update i goes
to replica i % replicas). The clock starts when the UpdateExperiment reply arrives;
the reply's experiment.etag is the new revision. From that moment every OTHER replica
is polled concurrently (grpc.aio, one GetExperiment in flight per replica, no sleep
between calls) until it returns that etag. One sample per (update, other replica):
200 updates over 3 replicas give 400 samples. The next update starts once every
replica has the change. GetExperiment reads the same in-memory registry entry that
Assign reads, so "serves the new etag" means "Assign uses the new definition".

How to read the figure:
- **p50 / p90 / p99 / max**: ms from the writer's reply to the first poll that saw
  the new etag on another replica (nearest-rank percentiles). The target is
  p99 < 100 ms.
- A sample is an upper bound with the resolution of one poll: the replica applied
  the change somewhere between the previous poll's read and the one that saw it. The
  **poll RTT** (median over every poll of the same run) is that resolution and the
  floor of the figure: with no other load it is about 1-3 ms on the 2-core VM, where
  the poller, 3 replicas and Redis share the cores. "applied before the first poll"
  counts samples whose very first poll already saw the change (the push arrived
  before the writer's reply did): such a sample is one poll RTT, and a slow one is a
  slow poll (a busy replica or a starved client), not a late push. The row "of which
  not there at the first poll" isolates the samples where the change was really
  still on its way.
- The path measured is the push: the writer's script bumps the revision and
  PUBLISHes the id; each replica's registry reloads on the message. The fallback (a
  revision check every ASSIGNSVC_REFRESH_INTERVAL seconds, printed above the table)
  would show up as samples spread up to that interval; by default the servers keep
  their default interval, so the figure is the push's. `--refresh-interval 3600`
  leaves the push alone.
- The default run is a burst of about a second, so it meets about one fallback
  check per replica. A change that lands while a replica is busy with one (a full
  reload, whose cost grows with the number of experiments) waits for it; to see that
  cost, spread the updates over several intervals and give the replicas a catalog:
  `--pause-ms 25 --extra-experiments 5000`.
- The load generator, the replicas and Redis share the machine's cores: scheduling
  noise lands in the tail, so read p99 beside the poll RTT of the same run.

    python benchmarks/propagation.py [--replicas 3] [--updates 200] [--refresh-interval SECONDS]
                                     [--extra-experiments N] [--pause-ms MS]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path

import grpc
from google.protobuf import field_mask_pb2

sys.path.insert(0, str(Path(__file__).resolve().parent))
from load_assign import server_process

from assignsvc.config import ServerConfig
from assignsvc.store.redis_server import RedisServerProcess
from assignsvc.v1 import experiment_pb2 as epb
from assignsvc.v1 import experiment_service_pb2 as espb
from assignsvc.v1 import experiment_service_pb2_grpc as egrpc

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
EXPERIMENT = "propagation"
TARGET_P99_MS = 100.0


@dataclass
class Sample:
    """One (update, other replica) observation; times in ms from the writer's reply."""

    update: int
    writer: int
    replica: int
    ms: float | None  # None: not seen before the deadline
    polls: int  # 1: the change was there at the first poll, so ms is one poll RTT
    at_ms: float  # when the writer's reply arrived, since the first timed update's


@dataclass
class Run:
    """Everything one run measured."""

    samples: list[Sample] = field(default_factory=list)
    poll_rtts_ms: list[float] = field(default_factory=list)
    update_rtts_ms: list[float] = field(default_factory=list)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


async def wait_for_etag(
    stub: egrpc.ExperimentServiceStub,
    etag: str,
    started: float,
    deadline: float,
    rtts: list[float],
) -> tuple[float | None, int]:
    """Poll GetExperiment until it returns etag; (ms since started or None, polls)."""
    request = espb.GetExperimentRequest(experiment_id=EXPERIMENT)
    polls = 0
    while True:
        sent = time.perf_counter()
        try:
            reply = await stub.GetExperiment(request)
        except grpc.aio.AioRpcError as error:  # NOT_FOUND: not created there yet
            if error.code() is not grpc.StatusCode.NOT_FOUND:
                raise
            reply = None
        now = time.perf_counter()
        polls += 1
        rtts.append((now - sent) * 1000)
        if reply is not None and reply.experiment.etag == etag:
            return (now - started) * 1000, polls
        if now > deadline:
            return None, polls


def experiment(experiment_id: str) -> epb.Experiment:
    """A RUNNING experiment with two arms."""
    return epb.Experiment(
        id=experiment_id,
        status=epb.EXPERIMENT_STATUS_RUNNING,
        arms=[epb.Arm(id="control", weight=0.5), epb.Arm(id="treatment", weight=0.5)],
    )


async def measure(
    targets: list[str],
    updates: int,
    warmup: int,
    *,
    extra: int,
    pause_s: float,
    timeout_s: float,
) -> Run:
    """Create the experiments, then update one warmup + updates times, timing each propagation."""
    channels = [grpc.aio.insecure_channel(t) for t in targets]
    try:
        stubs = [egrpc.ExperimentServiceStub(c) for c in channels]
        for first in range(0, extra, 50):  # the untouched rest of a catalog
            await asyncio.gather(
                *(
                    stubs[0].CreateExperiment(espb.CreateExperimentRequest(experiment=experiment(f"other-{n:05d}")))
                    for n in range(first, min(first + 50, extra))
                )
            )
        created = await stubs[0].CreateExperiment(espb.CreateExperimentRequest(experiment=experiment(EXPERIMENT)))
        etag = created.experiment.etag
        # Every replica holds the experiment before the first timed update.
        for stub in stubs[1:]:
            seen, _ = await wait_for_etag(stub, etag, time.perf_counter(), time.perf_counter() + timeout_s, [])
            if seen is None:
                raise RuntimeError("a replica never received the created experiment")
        mask = field_mask_pb2.FieldMask(paths=["coverage"])
        run = Run()
        origin = 0.0
        for i in range(warmup + updates):
            if pause_s:
                await asyncio.sleep(pause_s)
            writer = i % len(stubs)
            coverage = 0.5 + (i % 50) / 100  # always differs from the previous value
            request = espb.UpdateExperimentRequest(
                experiment=epb.Experiment(id=EXPERIMENT, coverage=coverage, etag=etag), update_mask=mask
            )
            sent = time.perf_counter()
            reply = await stubs[writer].UpdateExperiment(request)
            started = time.perf_counter()
            etag = reply.experiment.etag
            others = [r for r in range(len(stubs)) if r != writer]
            rtts: list[float] = []
            results = await asyncio.gather(
                *(wait_for_etag(stubs[r], etag, started, started + timeout_s, rtts) for r in others)
            )
            if i < warmup:
                continue
            origin = origin or started
            run.update_rtts_ms.append((started - sent) * 1000)
            run.poll_rtts_ms += rtts
            for replica, (ms, polls) in zip(others, results, strict=True):
                run.samples.append(Sample(i - warmup, writer, replica, ms, polls, (started - origin) * 1000))
        return run
    finally:
        for channel in channels:
            await channel.close()


def summary(values: list[float]) -> dict[str, float]:
    """count, p50, p90, p99 and max (ms) of a list of samples."""
    if not values:
        return {"count": 0}
    return {
        "count": len(values),
        "p50_ms": percentile(values, 50),
        "p90_ms": percentile(values, 90),
        "p99_ms": percentile(values, 99),
        "max_ms": max(values),
    }


def report(run: Run, args: argparse.Namespace, refresh_s: float, timeout_s: float, elapsed_s: float) -> bool:
    """Print the table, write the JSON; False when a change never arrived (not a valid figure)."""
    seen = summary([s.ms for s in run.samples if s.ms is not None])
    late = summary([s.ms for s in run.samples if s.ms is not None and s.polls > 1])
    missed = len(run.samples) - seen["count"]
    poll_rtt_ms = statistics.median(run.poll_rtts_ms)
    update_rtt_ms = statistics.median(run.update_rtts_ms)
    passed = missed == 0 and seen.get("p99_ms", math.inf) < TARGET_P99_MS

    print(
        f"\n{args.replicas} replicas, {args.updates} updates through a rotating replica "
        f"(+{args.warmup} untimed, {args.pause_ms:g} ms apart), {args.extra_experiments + 1} experiments, "
        f"fallback revision check every {refresh_s:g} s, {elapsed_s:.1f} s"
    )
    print(f"\n{'':<44}{'count':>6}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'max ms':>9}")
    rows = [("Update reply -> other replica serves it", seen), ("  of which not there at the first poll", late)]
    for name, row in rows:
        figures = "".join(f"{row[k]:>9.2f}" for k in ("p50_ms", "p90_ms", "p99_ms", "max_ms") if k in row)
        print(f"{name:<44}{row['count']:>6}{figures}")
    print(f"{'poll RTT, GetExperiment (baseline)':<44}{len(run.poll_rtts_ms):>6}{poll_rtt_ms:>9.2f}")
    print(f"{'UpdateExperiment RTT':<44}{len(run.update_rtts_ms):>6}{update_rtt_ms:>9.2f}")
    print(
        f"\napplied before the first poll: {seen['count'] - late['count']}/{len(run.samples)}; "
        f"never seen within {timeout_s:g} s: {missed}"
    )
    print(f"target p99 < {TARGET_P99_MS:g} ms: {'PASS' if passed else 'FAIL'}")

    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "propagation.json"
    out.write_text(
        json.dumps(
            {
                "machine": {"cpus": os.cpu_count()},
                "replicas": args.replicas,
                "updates": args.updates,
                "warmup": args.warmup,
                "extra_experiments": args.extra_experiments,
                "pause_ms": args.pause_ms,
                "refresh_interval_s": refresh_s,
                "target_p99_ms": TARGET_P99_MS,
                "passed": passed,
                "missed": missed,
                "elapsed_s": elapsed_s,
                "propagation": seen,
                "not_there_at_first_poll": late,
                "poll_rtt_ms_median": poll_rtt_ms,
                "update_rtt_ms_median": update_rtt_ms,
                "samples": [asdict(s) for s in run.samples],
            },
            indent=2,
        )
    )
    print(f"\nwrote {out}")
    return missed == 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--updates", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=5, help="untimed updates first (channels, first calls)")
    parser.add_argument(
        "--extra-experiments",
        type=int,
        default=0,
        help="untouched experiments created first: the catalog that a full reload reads",
    )
    parser.add_argument(
        "--pause-ms",
        type=float,
        default=0.0,
        help="idle time before each update (spreads the run over more fallback checks)",
    )
    parser.add_argument(
        "--refresh-interval",
        type=float,
        default=None,
        help="ASSIGNSVC_REFRESH_INTERVAL for the servers (default: the server default)",
    )
    args = parser.parse_args()
    if args.replicas < 2 or args.updates < 1:
        parser.error("--replicas must be at least 2 and --updates at least 1")

    # The servers inherit this process's environment (server_process passes none of its own).
    if args.refresh_interval is None:
        os.environ.pop("ASSIGNSVC_REFRESH_INTERVAL", None)
        refresh_s = ServerConfig().refresh_interval_s
    else:
        os.environ["ASSIGNSVC_REFRESH_INTERVAL"] = str(args.refresh_interval)
        refresh_s = args.refresh_interval
    timeout_s = min(60.0, max(5.0, 3 * refresh_s))

    with tempfile.TemporaryDirectory(prefix="assignsvc-bench-") as tmp:
        redis = RedisServerProcess(Path(tmp) / "redis", unix_socket=Path(tmp) / "redis.sock")
        redis.start()
        try:
            serve = [sys.executable, "-m", "assignsvc", "serve", "--port", "0", "--redis-url", redis.url]
            with ExitStack() as stack:
                targets = [stack.enter_context(server_process(serve)) for _ in range(args.replicas)]
                began = time.perf_counter()
                run = asyncio.run(
                    measure(
                        targets,
                        args.updates,
                        args.warmup,
                        extra=args.extra_experiments,
                        pause_s=args.pause_ms / 1000,
                        timeout_s=timeout_s,
                    )
                )
                elapsed_s = time.perf_counter() - began
        finally:
            redis.stop()
    if not report(run, args, refresh_s, timeout_s, elapsed_s):
        sys.exit(1)  # a change that never arrived is a failure, not a figure


if __name__ == "__main__":
    main()
