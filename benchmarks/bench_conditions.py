"""Targeting cost: the compiled condition evaluator beside growthbook's evalCondition (in
process, same condition and attributes, same run), and Assign through a live server with
and without a 5-clause condition (interleaved rounds, medians).

    python benchmarks/bench_conditions.py [--n 100000] [--repeats 5] [--rounds 3] [--duration 3]

Assign scenarios, all new participants on one server and one Redis:
  plain           no condition, no attributes (the Assign of before targeting)
  plain + attrs   no condition, the request carries the 5 attributes (what parsing them costs)
  5-clause        the condition below, every participant eligible (same Redis work as plain)
The condition's cost is `5-clause` against `plain + attrs` (target: <= 10%), read two
ways: throughput (RPS, which on a shared 2-core machine moves with everything else
running), and the server process's own CPU time per Assign (utime + stime from
/proc/PID/stat around each measurement), which other processes do not inflate.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
from growthbook.core import evalCondition

sys.path.insert(0, str(Path(__file__).resolve().parent))
from load_assign import serving_process
from loadgen import LoadResult, run_load

from assignsvc.app.assign import Assigner
from assignsvc.app.registry import ExperimentRegistry
from assignsvc.core.conditions import compile_condition
from assignsvc.core.model import Arm, Experiment, ExperimentStatus
from assignsvc.store.redis_server import RedisServerProcess
from assignsvc.v1 import experiment_pb2 as epb
from assignsvc.v1 import experiment_service_pb2 as espb
from assignsvc.v1 import experiment_service_pb2_grpc as egrpc

RESULTS = Path(__file__).resolve().parent / "results"
CONDITION = {
    "country": {"$in": ["US", "CA", "GB", "DE"]},
    "age": {"$gte": 18},
    "plan": {"$ne": "free"},
    "app": {"$vgte": "2.0.0"},
    "email": {"$regex": "@example\\.com$"},
}
# The same with a regex that needs the engine (literal patterns take a str-method fast path).
CONDITION_ENGINE = {**CONDITION, "email": {"$regex": "^[a-z]+@example\\.(com|org)$"}}
MATCHING = {"country": "US", "age": 30, "plan": "pro", "app": "2.3.1", "email": "ana@example.com"}
FAILING_LAST = {**MATCHING, "email": "ana@example.org"}  # every clause runs, the last one fails


def ns_per_call(fn: Callable[[], object], n: int, repeats: int) -> float:
    """Median over repeats of the mean time per call, in ns."""
    timings = []
    for _ in range(repeats):
        start = time.perf_counter_ns()
        for _ in range(n):
            fn()
        timings.append((time.perf_counter_ns() - start) / n)
    return statistics.median(timings)


def micro(n: int, repeats: int) -> list[dict[str, Any]]:
    groups: dict[str, Any] = {}
    rows = []
    cases = [
        ("literal regex", CONDITION, "all 5 clauses match", MATCHING),
        ("literal regex", CONDITION, "last clause fails", FAILING_LAST),
        ("engine regex", CONDITION_ENGINE, "all 5 clauses match", MATCHING),
        ("engine regex", CONDITION_ENGINE, "last clause fails", FAILING_LAST),
    ]
    for kind, condition, label, attributes in cases:
        compiled = compile_condition(condition)
        assert compiled(attributes, groups) is evalCondition(attributes, condition)
        ours = ns_per_call(lambda c=compiled, a=attributes: c(a, groups), n, repeats)
        theirs = ns_per_call(lambda c=condition, a=attributes: evalCondition(a, c), n // 10, repeats)
        rows.append(
            {
                "condition": kind,
                "attributes": label,
                "compiled_ns": ours,
                "growthbook_ns": theirs,
                "speedup": theirs / ours,
            }
        )
    compile_ns = ns_per_call(lambda: compile_condition(CONDITION), max(1, n // 100), repeats)
    print(f"\n{'5-clause condition':<38}{'compiled ns':>13}{'evalCondition ns':>18}{'speed-up':>10}")
    for row in rows:
        print(
            f"{row['condition'] + ', ' + row['attributes']:<38}{row['compiled_ns']:>13.0f}"
            f"{row['growthbook_ns']:>18.0f}{row['speedup']:>9.1f}x"
        )
    print(f"(compiling it once: {compile_ns / 1000:.0f} us)")
    return [*rows, {"compile_ns": compile_ns}, prepare(n, repeats)]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def prepare(n: int, repeats: int) -> dict[str, Any]:
    """The Assign path in process, up to the store call (Assigner._prepare: validation,
    registry, identity, cache miss, condition, bucketing), with and without the condition."""
    registry = ExperimentRegistry(store=None)  # type: ignore[arg-type]  # never started: no store needed
    arms = (Arm("control", "control", 0.5), Arm("treatment", "treatment", 0.5))
    registry.put(Experiment(id="plain", name="plain", arms=arms, status=ExperimentStatus.RUNNING))
    registry.put(
        Experiment(
            id="targeted", name="targeted", arms=arms, status=ExperimentStatus.RUNNING, condition=json.dumps(CONDITION)
        )
    )
    assigner = Assigner(registry, store=None)  # type: ignore[arg-type]
    out = {}
    for experiment in ("plain", "targeted"):
        out[experiment] = ns_per_call(
            lambda e=experiment: assigner._prepare(e, "participant-000001", MATCHING, 0), n, repeats
        )
    print(
        f"Assigner._prepare: no condition {out['plain']:.0f} ns, 5-clause condition {out['targeted']:.0f} ns "
        f"(+{out['targeted'] - out['plain']:.0f} ns per Assign)"
    )
    return {"prepare_ns_plain": out["plain"], "prepare_ns_5_clause": out["targeted"]}


def create(target: str, experiment_id: str, condition: str) -> None:
    with grpc.insecure_channel(target) as channel:
        egrpc.ExperimentServiceStub(channel).CreateExperiment(
            espb.CreateExperimentRequest(
                experiment=epb.Experiment(
                    id=experiment_id,
                    status=epb.EXPERIMENT_STATUS_RUNNING,
                    condition=condition,
                    arms=[epb.Arm(id="control", weight=0.5), epb.Arm(id="treatment", weight=0.5)],
                )
            )
        )


def live(rounds: int, duration: float, concurrencies: list[int]) -> list[dict[str, Any]]:
    samples: dict[tuple[str, int], list[LoadResult]] = {}
    cpu_us: dict[tuple[str, int], list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="assignsvc-bench-") as tmp:
        redis = RedisServerProcess(Path(tmp) / "redis", unix_socket=Path(tmp) / "redis.sock")
        redis.start()
        try:
            serve = [sys.executable, "-m", "assignsvc", "serve", "--port", "0", "--redis-url", redis.url]
            with serving_process(serve) as (target, pid):
                create(target, "plain", "")
                create(target, "targeted", json.dumps(CONDITION))
                run_id = time.time_ns()
                for round_no in range(rounds):
                    for c in concurrencies:
                        scenarios: dict[str, tuple[str, dict[str, object] | None]] = {
                            "plain": ("plain", None),
                            "plain + attrs": ("plain", MATCHING),
                            "5-clause": ("targeted", MATCHING),
                        }
                        for name, (experiment, attributes) in scenarios.items():
                            ids = lambda i, r=round_no, c=c, s=name: f"{run_id}-{s}-{r}-{c}-{i}"  # noqa: E731
                            cpu_before = cpu_seconds(pid)
                            result = asyncio.run(
                                run_load(target, experiment, ids, c, duration, attributes=attributes, warmup_s=0.0)
                            )
                            per_call = (cpu_seconds(pid) - cpu_before) / max(1, result.calls) * 1e6
                            samples.setdefault((name, c), []).append(result)
                            cpu_us.setdefault((name, c), []).append(per_call)
                            print(
                                f"round {round_no + 1} c={c:<3} {name:<14} {result.rps:8.0f} rps "
                                f"p50 {result.p50_us:6.0f}us server CPU {per_call:5.0f}us/call "
                                f"errors {result.errors}",
                                file=sys.stderr,
                            )
        finally:
            redis.stop()
    rows = []
    for (name, c), results in samples.items():
        base = statistics.median(r.rps for r in samples[("plain + attrs", c)])
        plain = statistics.median(r.rps for r in samples[("plain", c)])
        rps = statistics.median(r.rps for r in results)
        cpu = statistics.median(cpu_us[(name, c)])
        cpu_base = statistics.median(cpu_us[("plain + attrs", c)])
        rows.append(
            {
                "scenario": name,
                "concurrency": c,
                "cpu_us_per_call_median": cpu,
                "cpu_ratio_to_plain_attrs": cpu / cpu_base,
                "cpu_us_rounds": cpu_us[(name, c)],
                "rps_median": rps,
                "ratio_to_plain_attrs": rps / base,
                "ratio_to_plain": rps / plain,
                "p50_us_median": statistics.median(r.p50_us for r in results),
                "errors": sum(r.errors for r in results),
                "rps_rounds": [r.rps for r in results],
            }
        )
    print(
        f"\n{'Assign (new participants)':<20}{'conc':>5}{'CPU us/call':>12}{'vs plain+attrs':>16}{'RPS':>8}"
        f"{'vs plain+attrs':>16}{'vs plain':>10}{'p50 us':>9}{'errors':>8}"
    )
    for row in rows:
        print(
            f"{row['scenario']:<20}{row['concurrency']:>5}{row['cpu_us_per_call_median']:>12.0f}"
            f"{row['cpu_ratio_to_plain_attrs']:>15.0%}{row['rps_median']:>9.0f}"
            f"{row['ratio_to_plain_attrs']:>15.0%}{row['ratio_to_plain']:>10.0%}{row['p50_us_median']:>9.0f}"
            f"{row['errors']:>8}"
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    args = parser.parse_args()
    micro_rows = micro(args.n, args.repeats)
    live_rows = live(args.rounds, args.duration, args.concurrency)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "bench_conditions.json"
    out.write_text(
        json.dumps(
            {
                "machine": {"cpus": os.cpu_count()},
                "condition": CONDITION,
                "micro": micro_rows,
                "rounds": args.rounds,
                "duration_s": args.duration,
                "assign": live_rows,
            },
            indent=2,
        )
    )
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
