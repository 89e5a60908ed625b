"""Targeting cost: the compiled condition evaluator beside growthbook's evalCondition (in
process, same condition and attributes, same run), and Assign through a live server with
and without a 5-clause condition (interleaved rounds, medians).

    python benchmarks/bench_conditions.py [--n 100000] [--repeats 5] [--rounds 3] [--duration 3]

Assign scenarios, all new participants on one server and one Redis:
  plain           no condition, no attributes (the Assign of before targeting)
  plain + attrs   no condition, the request carries the 5 attributes (what parsing them costs)
  5-clause        the condition below, every participant eligible (same Redis work as plain)
The condition's cost is `5-clause` against `plain + attrs` (target: <= 10%).
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
from load_assign import server_process
from loadgen import LoadResult, run_load

from assignsvc.core.conditions import compile_condition
from assignsvc.redis_server import RedisServerProcess
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
    cases = [("literal regex", CONDITION, "all 5 clauses match", MATCHING),
             ("literal regex", CONDITION, "last clause fails", FAILING_LAST),
             ("engine regex", CONDITION_ENGINE, "all 5 clauses match", MATCHING),
             ("engine regex", CONDITION_ENGINE, "last clause fails", FAILING_LAST)]
    for kind, condition, label, attributes in cases:
        compiled = compile_condition(condition)
        assert compiled(attributes, groups) is evalCondition(attributes, condition)
        ours = ns_per_call(lambda c=compiled, a=attributes: c(a, groups), n, repeats)
        theirs = ns_per_call(lambda c=condition, a=attributes: evalCondition(a, c), n // 10, repeats)
        rows.append({"condition": kind, "attributes": label, "compiled_ns": ours, "growthbook_ns": theirs,
                     "speedup": theirs / ours})
    compile_ns = ns_per_call(lambda: compile_condition(CONDITION), max(1, n // 100), repeats)
    print(f"\n{'5-clause condition':<38}{'compiled ns':>13}{'evalCondition ns':>18}{'speed-up':>10}")
    for row in rows:
        print(f"{row['condition'] + ', ' + row['attributes']:<38}{row['compiled_ns']:>13.0f}"
              f"{row['growthbook_ns']:>18.0f}{row['speedup']:>9.1f}x")
    print(f"(compiling it once: {compile_ns / 1000:.0f} us)")
    return [*rows, {"compile_ns": compile_ns}]


def create(target: str, experiment_id: str, condition: str) -> None:
    with grpc.insecure_channel(target) as channel:
        egrpc.ExperimentServiceStub(channel).CreateExperiment(espb.CreateExperimentRequest(
            experiment=epb.Experiment(
                id=experiment_id, status=epb.EXPERIMENT_STATUS_RUNNING, condition=condition,
                arms=[epb.Arm(id="control", weight=0.5), epb.Arm(id="treatment", weight=0.5)],
            )
        ))


def live(rounds: int, duration: float, concurrencies: list[int]) -> list[dict[str, Any]]:
    samples: dict[tuple[str, int], list[LoadResult]] = {}
    with tempfile.TemporaryDirectory(prefix="assignsvc-bench-") as tmp:
        redis = RedisServerProcess(Path(tmp) / "redis", unix_socket=Path(tmp) / "redis.sock")
        redis.start()
        try:
            serve = [sys.executable, "-m", "assignsvc", "serve", "--port", "0", "--redis-url", redis.url]
            with server_process(serve) as target:
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
                            result = asyncio.run(run_load(target, experiment, ids, c, duration, attributes=attributes))
                            samples.setdefault((name, c), []).append(result)
                            print(f"round {round_no + 1} c={c:<3} {name:<14} {result.rps:8.0f} rps "
                                  f"p50 {result.p50_us:6.0f}us errors {result.errors}", file=sys.stderr)
        finally:
            redis.stop()
    rows = []
    for (name, c), results in samples.items():
        base = statistics.median(r.rps for r in samples[("plain + attrs", c)])
        plain = statistics.median(r.rps for r in samples[("plain", c)])
        rps = statistics.median(r.rps for r in results)
        rows.append({"scenario": name, "concurrency": c, "rps_median": rps, "ratio_to_plain_attrs": rps / base,
                     "ratio_to_plain": rps / plain, "p50_us_median": statistics.median(r.p50_us for r in results),
                     "errors": sum(r.errors for r in results), "rps_rounds": [r.rps for r in results]})
    print(f"\n{'Assign (new participants)':<28}{'conc':>5}{'RPS':>9}{'vs plain+attrs':>16}{'vs plain':>10}"
          f"{'p50 us':>9}{'errors':>8}")
    for row in rows:
        print(f"{row['scenario']:<28}{row['concurrency']:>5}{row['rps_median']:>9.0f}"
              f"{row['ratio_to_plain_attrs']:>15.0%}{row['ratio_to_plain']:>10.0%}{row['p50_us_median']:>9.0f}"
              f"{row['errors']:>8}")
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
    out.write_text(json.dumps({"machine": {"cpus": os.cpu_count()}, "condition": CONDITION, "micro": micro_rows,
                               "rounds": args.rounds, "duration_s": args.duration, "assign": live_rows}, indent=2))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
