"""Bucketing core: nanoseconds per decision, beside the growthbook package evaluating
the same experiment in the same run (its bucketing functions, and its full run()).

    python benchmarks/bench_core.py [--n 200000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import growthbook.core as gbcore
from growthbook import Experiment as GBExperiment
from growthbook import GrowthBook

from assignsvc.core.bucketing import BucketPlan
from assignsvc.core.model import Arm, Experiment, HashAlgorithm, Namespace

RESULTS = Path(__file__).resolve().parent / "results"
WEIGHTS = [0.2, 0.3, 0.5]


def ns_per_call(fn: Callable[[str], object], ids: list[str], repeats: int) -> float:
    """Median over repeats of the mean time per call, in ns."""
    timings = []
    for _ in range(repeats):
        start = time.perf_counter_ns()
        for pid in ids:
            fn(pid)
        timings.append((time.perf_counter_ns() - start) / len(ids))
    return statistics.median(timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    ids = [f"user-{i:012d}" for i in range(args.n)]
    namespace = Namespace("ns", 0.0, 0.8)

    def ours(algorithm: HashAlgorithm) -> Callable[[str], object]:
        exp = Experiment(
            id="bench",
            name="bench",
            arms=tuple(Arm(f"a{i}", f"a{i}", w) for i, w in enumerate(WEIGHTS)),
            coverage=0.9,
            namespace=namespace,
            hash_algorithm=algorithm,
        )
        return BucketPlan.compile(exp).arm_of  # what Assign calls: the arm index, no object

    gb_exp = GBExperiment(
        key="bench", variations=[0, 1, 2], weights=WEIGHTS, coverage=0.9, namespace=("ns", 0.0, 0.8), hashVersion=2
    )

    def gb_functions(pid: str) -> int:
        if not gbcore.inNamespace(pid, ("ns", 0.0, 0.8)):
            return -1
        n = gbcore.gbhash("bench", pid, 2)
        return gbcore.chooseVariation(n, gbcore.getBucketRanges(3, 0.9, WEIGHTS))  # type: ignore[arg-type]

    gb = GrowthBook(attributes={})

    def gb_run(pid: str) -> object:
        gb.set_attributes({"id": pid})
        return gb.run(gb_exp)

    rows = {
        "assignsvc MURMUR3": ns_per_call(ours(HashAlgorithm.MURMUR3), ids, args.repeats),
        "assignsvc GROWTHBOOK_V2": ns_per_call(ours(HashAlgorithm.GROWTHBOOK_V2), ids, args.repeats),
        "growthbook pkg: bucketing functions (v2)": ns_per_call(gb_functions, ids, args.repeats),
        "growthbook pkg: GrowthBook.run() (v2)": ns_per_call(gb_run, ids[: max(1, args.n // 10)], args.repeats),
    }
    gb.destroy()
    baseline = rows["growthbook pkg: GrowthBook.run() (v2)"]
    print(f"{'decision':<44}{'ns/decision':>12}{'speed-up vs run()':>19}")
    for name, ns in rows.items():
        print(f"{name:<44}{ns:>12.0f}{baseline / ns:>18.1f}x")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "bench_core.json"
    out.write_text(json.dumps({"n": args.n, "repeats": args.repeats, "ns_per_decision": rows}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
