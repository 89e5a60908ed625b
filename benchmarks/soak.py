"""Soak: a bounded, rate-limited mixed load for a long time; errors, latency and resource drift.

Leaks show up only over time: a file descriptor per stream, a task per cancelled call,
a cache that never stops growing. This drives every kind of call a sidecar sees at a
fixed total rate from a few clients (each one call at a time, so the load is bounded:
a slow server gets fewer calls, never a pile-up) and samples the server process's RSS
and open file descriptors (/proc/PID) and Redis's used_memory at the start, every
--sample-every seconds and at the end.

Drift is reported twice: end - start, and the slope of a least-squares line through the
samples of the second half (per minute), so warm-up (connections opening, the sticky
cache filling, Python's allocator settling) does not count. By default it starts its
own `assignsvc serve` (with its embedded Redis in a temporary data dir, and a sticky
cache of --cache-size entries, small enough to fill during the first half);
`--target HOST:PORT` soaks a running server instead (`--pid` and `--redis-url` add its
samples). Exit status 1 if any call failed.

    python benchmarks/soak.py [--duration 600] [--rate 200] [--clients 8] [--interval 60]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from redis.asyncio import Redis

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hdrh.histogram import HdrHistogram
from load_assign import RESULTS, serving_process
from soak_resources import drift, process_sample, redis_used_memory

from assignsvc.store.redis_server import socket_path_for
from assignsvc.v1 import assignment_service_pb2 as apb
from assignsvc.v1 import assignment_service_pb2_grpc as agrpc
from assignsvc.v1 import bulk_assignment_service_pb2 as bpb
from assignsvc.v1 import bulk_assignment_service_pb2_grpc as bgrpc
from assignsvc.v1 import experiment_pb2 as epb
from assignsvc.v1 import experiment_service_pb2 as espb
from assignsvc.v1 import experiment_service_pb2_grpc as egrpc

EXPERIMENTS = ("soak-a", "soak-b", "soak-c")
# The mix, in calls per 100 (each client draws from it): what a sidecar mostly sees
# (Assign, half of them returning participants) with some of everything else.
# GetExperimentStats (4096 shards summed per experiment) and exports are not drawn:
# they run on their own timers (--stats-every, --export-every), as a dashboard would.
MIX = {
    "Assign (new)": 36,
    "Assign (repeat)": 36,
    "BatchAssign": 5,
    "StreamAssign": 4,
    "GetExperiment": 12,
    "ListExperiments": 7,
}
BATCH_ITEMS = 20
STREAM_MESSAGES = 20
REPEAT_POOL = 2000  # returning participants per experiment
CALL_TIMEOUT_S = 10.0
# Channels of one process share connections by default (gRPC's global subchannel pool):
# a local pool gives each client its own TCP connection, as separate application
# processes would have, so the server's connection handling is soaked too.
CHANNEL_OPTIONS = [("grpc.use_local_subchannel_pool", 1)]


def new_histogram() -> HdrHistogram:
    """Microseconds, 1 us to 60 s, 3 significant digits."""
    return HdrHistogram(1, 60_000_000, 3)


@dataclass
class Tally:
    """Calls, errors by status code and latency, per method; one per interval and one in all."""

    calls: Counter[str] = field(default_factory=Counter)
    errors: Counter[tuple[str, str]] = field(default_factory=Counter)  # (method, code)
    latency: dict[str, HdrHistogram] = field(default_factory=dict)

    def record(self, method: str, code: str, seconds: float) -> None:
        """One call (or one failed item of a batch or stream, with seconds < 0: no latency)."""
        if seconds >= 0:
            self.calls[method] += 1
            self.latency.setdefault(method, new_histogram()).record_value(max(1, int(seconds * 1e6)))
        if code != "OK":
            self.errors[(method, code)] += 1

    def summary(self) -> dict[str, Any]:
        """Per method: calls, errors by code, p50 / p99 / max in microseconds."""
        out = {}
        for method in sorted(set(self.calls) | {m for m, _ in self.errors}):
            hist = self.latency.get(method)
            out[method] = {
                "calls": self.calls[method],
                "errors": {code: n for (m, code), n in self.errors.items() if m == method},
                "p50_us": hist.get_value_at_percentile(50) if hist else None,
                "p99_us": hist.get_value_at_percentile(99) if hist else None,
                "max_us": hist.get_max_value() if hist else None,
            }
        return out

    def assign_percentiles(self) -> tuple[int | None, int | None]:
        """p50 and p99 of unary Assign (new and repeat together): the hot path's latency."""
        merged = new_histogram()
        for method, hist in self.latency.items():
            if method.startswith("Assign"):
                merged.add(hist)
        if merged.get_total_count() == 0:
            return None, None
        return merged.get_value_at_percentile(50), merged.get_value_at_percentile(99)


class Soak:
    """The clients, the periodic stats and export calls, and the two tallies they record into."""

    def __init__(self, target: str, args: argparse.Namespace) -> None:
        self.target = target
        self.args = args
        self.total = Tally()
        self.interval = Tally()
        self.run_id = time.time_ns()
        self.new_ids = 0
        self.stop_at = 0.0

    def record(self, method: str, code: str, seconds: float) -> None:
        """Into both the interval's tally and the total."""
        self.total.record(method, code, seconds)
        self.interval.record(method, code, seconds)

    def next_new_id(self) -> str:
        self.new_ids += 1
        return f"n-{self.run_id}-{self.new_ids}"

    async def timed(self, method: str, call: Any) -> Any:
        """Await `call`, record it under `method` with its status code; None if it failed."""
        started = time.perf_counter()
        try:
            reply = await call
        except grpc.aio.AioRpcError as error:
            self.record(method, error.code().name, time.perf_counter() - started)
            return None
        self.record(method, "OK", time.perf_counter() - started)
        return reply

    def item_errors(self, method: str, results: Any) -> None:
        """A batch's or stream's per-item errors, counted by status code (no latency of their own)."""
        for result in results:
            if result.WhichOneof("result") == "error":
                self.record(method + " item", code_name(result.error.code), -1)

    async def client(self, index: int, rate: float) -> None:
        """One client: a call every 1/rate s (late calls are not made up: the load stays bounded)."""
        rng = random.Random(self.args.seed * 1000 + index)
        methods, weights = list(MIX), list(MIX.values())
        async with grpc.aio.insecure_channel(self.target, options=CHANNEL_OPTIONS) as channel:
            stubs = (agrpc.AssignmentServiceStub(channel), egrpc.ExperimentServiceStub(channel))
            next_at = time.monotonic()
            while (now := time.monotonic()) < self.stop_at:
                if next_at > now:
                    await asyncio.sleep(next_at - now)
                next_at = max(next_at + 1 / rate, time.monotonic() - 1 / rate)
                await self.one_call(rng.choices(methods, weights)[0], rng, *stubs)

    async def one_call(self, method: str, rng: random.Random, assign: Any, experiments: Any) -> None:
        """One call of the mix's kind `method`, on a random experiment."""
        experiment = rng.choice(EXPERIMENTS)

        def repeat_id() -> str:
            return f"r-{rng.randrange(REPEAT_POOL)}"

        if method.startswith("Assign"):
            pid = self.next_new_id() if method == "Assign (new)" else repeat_id()
            request = apb.AssignRequest(experiment_id=experiment, participant_id=pid)
            await self.timed(method, assign.Assign(request, timeout=CALL_TIMEOUT_S))
        elif method == "BatchAssign":
            items = [
                apb.AssignRequest(
                    experiment_id=rng.choice(EXPERIMENTS), participant_id=self.next_new_id() if i % 2 else repeat_id()
                )
                for i in range(BATCH_ITEMS)
            ]
            reply = await self.timed(
                method, assign.BatchAssign(apb.BatchAssignRequest(requests=items), timeout=CALL_TIMEOUT_S)
            )
            if reply is not None:
                self.item_errors(method, reply.results)
        elif method == "StreamAssign":
            await self.stream(assign, rng)
        elif method == "GetExperiment":
            await self.timed(
                method,
                experiments.GetExperiment(espb.GetExperimentRequest(experiment_id=experiment), timeout=CALL_TIMEOUT_S),
            )
        else:
            await self.timed(
                method, experiments.ListExperiments(espb.ListExperimentsRequest(page_size=2), timeout=CALL_TIMEOUT_S)
            )

    async def stream(self, assign: Any, rng: random.Random) -> None:
        """One StreamAssign call of STREAM_MESSAGES requests, half new participants; timed whole."""

        async def requests() -> AsyncIterator[apb.StreamAssignRequest]:
            for i in range(STREAM_MESSAGES):
                pid = self.next_new_id() if i % 2 else f"r-{rng.randrange(REPEAT_POOL)}"
                yield apb.StreamAssignRequest(experiment_id=rng.choice(EXPERIMENTS), participant_id=pid)

        async def consume() -> list[Any]:
            return [reply.result async for reply in assign.StreamAssign(requests(), timeout=CALL_TIMEOUT_S)]

        results = await self.timed("StreamAssign", consume())
        if results is not None:
            self.item_errors("StreamAssign", results)

    async def periodic(self, every_s: float, method: str) -> None:
        """GetExperimentStats or ExportAssignments (read to the end) every `every_s` seconds,
        on its own channel, one experiment after the other."""
        async with grpc.aio.insecure_channel(self.target, options=CHANNEL_OPTIONS) as channel:
            stats, bulk = egrpc.ExperimentServiceStub(channel), bgrpc.BulkAssignmentServiceStub(channel)
            turn = 0
            while time.monotonic() + every_s < self.stop_at:
                await asyncio.sleep(every_s)
                experiment = EXPERIMENTS[turn % len(EXPERIMENTS)]
                turn += 1
                if method == "GetExperimentStats":
                    await self.timed(
                        method,
                        stats.GetExperimentStats(
                            espb.GetExperimentStatsRequest(experiment_id=experiment), timeout=CALL_TIMEOUT_S
                        ),
                    )
                    continue

                async def drain(req: bpb.ExportAssignmentsRequest) -> int:
                    return sum([len(c.assignments) async for c in bulk.ExportAssignments(req, timeout=120)])

                await self.timed(method, drain(bpb.ExportAssignmentsRequest(experiment_id=experiment)))


def code_name(code: int) -> str:
    """The status code name of a google.rpc.Status code number."""
    return next((s.name for s in grpc.StatusCode if s.value[0] == code), f"CODE_{code}")


# --- the run ------------------------------------------------------------------------------


def create_experiments(target: str) -> None:
    """The experiments the load uses (RUNNING, two arms); already there is fine (--target)."""
    with grpc.insecure_channel(target) as channel:
        stub = egrpc.ExperimentServiceStub(channel)
        for experiment_id in EXPERIMENTS:
            experiment = epb.Experiment(
                id=experiment_id,
                status=epb.EXPERIMENT_STATUS_RUNNING,
                arms=[epb.Arm(id="control", weight=0.5), epb.Arm(id="treatment", weight=0.5)],
            )
            try:
                stub.CreateExperiment(espb.CreateExperimentRequest(experiment=experiment), timeout=CALL_TIMEOUT_S)
            except grpc.RpcError as error:
                if error.code() is not grpc.StatusCode.ALREADY_EXISTS:
                    raise


async def soak(target: str, pid: int | None, redis_url: str | None, args: argparse.Namespace) -> dict[str, Any]:
    """Run the load for args.duration seconds; the report (samples, intervals, totals, drift)."""
    redis = Redis.from_url(redis_url) if redis_url else None
    run = Soak(target, args)
    started = time.monotonic()
    samples: list[dict[str, Any]] = []
    intervals: list[dict[str, Any]] = []

    async def sample() -> dict[str, Any]:
        rss, fds, kinds = process_sample(pid)
        entry = {
            "t_s": round(time.monotonic() - started, 1),
            "rss_mib": rss,
            "fds": fds,
            "fd_kinds": kinds,
            "redis_used_mib": await redis_used_memory(redis),
        }
        samples.append(entry)
        return entry

    def close_interval(latest: dict[str, Any]) -> None:
        tally, run.interval = run.interval, Tally()
        p50, p99 = tally.assign_percentiles()
        calls, errors = sum(tally.calls.values()), sum(tally.errors.values())
        row = {
            "t_s": latest["t_s"],
            "calls": calls,
            "errors": dict(Counter({code: n for (_, code), n in tally.errors.items()})),
            "assign_p50_us": p50,
            "assign_p99_us": p99,
            "rss_mib": latest["rss_mib"],
            "fds": latest["fds"],
            "redis_used_mib": latest["redis_used_mib"],
        }
        intervals.append(row)
        print(
            f"{row['t_s']:>7.0f}s {calls:>8} calls {errors:>5} errors  Assign p50 {_num(p50):>7} us "
            f"p99 {_num(p99):>7} us  rss {_num(row['rss_mib'], '.1f'):>7} MiB  fds {_num(row['fds']):>5}  "
            f"redis {_num(row['redis_used_mib'], '.2f'):>8} MiB",
            file=sys.stderr,
            flush=True,
        )

    try:
        await sample()  # start: before any load
        run.stop_at = time.monotonic() + args.duration
        per_client = args.rate / args.clients
        load = [asyncio.create_task(run.client(i, per_client)) for i in range(args.clients)]
        load.append(asyncio.create_task(run.periodic(args.stats_every, "GetExperimentStats")))
        load.append(asyncio.create_task(run.periodic(args.export_every, "ExportAssignments")))
        next_interval = started + args.interval
        while not all(task.done() for task in load):
            await asyncio.wait(load, timeout=args.sample_every)
            latest = await sample()
            if next_interval <= time.monotonic() < run.stop_at:
                close_interval(latest)
                next_interval += args.interval
        close_interval(latest)  # the last one ends when the last call does
        for task in load:
            task.result()  # a bug in the load itself must not pass for a clean run
        await asyncio.sleep(args.settle)
        end = await sample()  # end: after the last calls finished and the server settled
        end["after_settle"] = True
    finally:
        if redis is not None:
            await redis.aclose()
    duration = args.duration
    return {
        "target": target,
        "pid": pid,
        "duration_s": duration,
        "rate": args.rate,
        "clients": args.clients,
        "mix": MIX,
        "stats_every_s": args.stats_every,
        "export_every_s": args.export_every,
        "cache_size": args.cache_size if args.target is None else None,
        "new_participants": run.new_ids,
        "totals": run.total.summary(),
        "errors_total": sum(run.total.errors.values()),
        "calls_total": sum(run.total.calls.values()),
        "achieved_rate": sum(run.total.calls.values()) / duration,
        "drift": {key: drift(samples, key, duration) for key in ("rss_mib", "fds", "redis_used_mib")},
        "intervals": intervals,
        "samples": samples,
    }


def _num(value: float | None, spec: str = ".0f") -> str:
    return "-" if value is None else format(value, spec)


def print_report(report: dict[str, Any]) -> None:
    """The totals per method, then start / end / drift of each resource."""
    print(f"\n{'method':<26}{'calls':>9}{'p50 us':>9}{'p99 us':>9}{'max us':>10}  errors")
    for method, row in report["totals"].items():
        errors = ", ".join(f"{code} {n}" for code, n in row["errors"].items()) or "0"
        print(
            f"{method:<26}{row['calls']:>9}{_num(row['p50_us']):>9}{_num(row['p99_us']):>9}"
            f"{_num(row['max_us']):>10}  {errors}"
        )
    print(
        f"{'all':<26}{report['calls_total']:>9}  ({report['achieved_rate']:.0f}/s of {report['rate']:.0f}/s "
        f"asked; {report['new_participants']} new participants)  errors {report['errors_total']}"
    )
    print(f"\n{'resource':<18}{'start':>10}{'end':>10}{'end-start':>11}{'slope/min, 2nd half':>21}")
    for key, label in (("rss_mib", "server RSS MiB"), ("fds", "server open fds"), ("redis_used_mib", "redis used MiB")):
        d = report["drift"][key]
        print(
            f"{label:<18}{_num(d['start'], '.2f'):>10}{_num(d['end'], '.2f'):>10}{_num(d['delta'], '+.2f'):>11}"
            f"{_num(d['slope_per_min_second_half'], '+.3f'):>21}"
        )
    first, last = report["samples"][0]["fd_kinds"], report["samples"][-1]["fd_kinds"]
    if first or last:
        print(
            "server fds by kind, start -> end: "
            + ", ".join(
                f"{kind} {first.get(kind, 0)} -> {last.get(kind, 0)}" for kind in sorted(set(first) | set(last))
            )
        )


@contextlib.contextmanager
def own_server(args: argparse.Namespace) -> Iterator[tuple[str, int, str]]:
    """`assignsvc serve` on a free port with its embedded Redis in a temporary data dir:
    (host:port, server pid, the embedded Redis's URL)."""
    with tempfile.TemporaryDirectory(prefix="assignsvc-soak-") as tmp:
        data_dir = Path(tmp) / "data"
        command = [sys.executable, "-m", "assignsvc", "serve", "--port", "0", "--data-dir", str(data_dir)]
        env = {"ASSIGNSVC_CACHE_SIZE": str(args.cache_size)}
        with serving_process(command, env) as (target, pid):
            yield target, pid, f"unix://{socket_path_for(data_dir)}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=600.0, help="seconds of load (default 600)")
    parser.add_argument("--rate", type=float, default=200.0, help="calls per second, all clients together")
    parser.add_argument("--clients", type=int, default=8, help="clients, each on its own channel, one call at a time")
    parser.add_argument("--interval", type=float, default=60.0, help="seconds per reported interval")
    parser.add_argument("--sample-every", type=float, default=5.0, help="seconds between resource samples")
    parser.add_argument("--stats-every", type=float, default=5.0, help="seconds between GetExperimentStats calls")
    parser.add_argument("--export-every", type=float, default=30.0, help="seconds between exports")
    parser.add_argument("--settle", type=float, default=2.0, help="seconds after the load before the end sample")
    parser.add_argument("--cache-size", type=int, default=10_000, help="ASSIGNSVC_CACHE_SIZE of the own server")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--target", help="soak a running server at HOST:PORT instead of starting one")
    parser.add_argument("--pid", type=int, help="with --target: the server's pid, for RSS and fds")
    parser.add_argument("--redis-url", help="with --target: its Redis, for used_memory")
    parser.add_argument("--output", type=Path, default=RESULTS / "soak.json")
    args = parser.parse_args()

    with contextlib.ExitStack() as stack:
        if args.target:
            target, pid, redis_url = args.target, args.pid, args.redis_url
        else:
            target, pid, redis_url = stack.enter_context(own_server(args))
        create_experiments(target)
        print(
            f"soaking {target} (pid {pid or '-'}) for {args.duration:.0f}s at {args.rate:.0f} calls/s "
            f"from {args.clients} clients",
            file=sys.stderr,
            flush=True,
        )
        report = asyncio.run(soak(target, pid, redis_url, args))
    print_report(report)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({"machine": {"cpus": os.cpu_count()}, **report}, indent=2))
    print(f"\nwrote {args.output}")
    return 1 if report["errors_total"] else 0


if __name__ == "__main__":
    sys.exit(main())
