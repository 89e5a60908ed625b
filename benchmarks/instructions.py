"""The service's own Python on the Assign path, in CPU instructions per call: a figure that
machine noise does not move.

On a shared machine CPU time per call moves by 20% or more between runs of the same code
(hot_path.py's rounds), which hides a 5-10% change. The number of instructions a call
executes does not depend on what else the machine runs. This script runs hot_path.py's
stack (every piece a served call runs through but gRPC's own, with a real Redis on a
unix socket) under valgrind's callgrind, twice per scenario: once with N calls and once
without them (same setup); the difference over N is the instructions per call (per item for batch).
With `--compare SRC` the same is measured for another source tree.

Instructions are not time (a cache miss costs more than an add), so this complements
hot_path.py's CPU time; it does not replace it. It needs valgrind (Debian: `apt-get
install valgrind`); under it the code runs ~50x slower, so N is small.

    python benchmarks/instructions.py [--calls 300] [--batches 3] [--compare ../main/src]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCENARIOS = ("repeat", "new", "batch")
WARM_CALLS = 50  # calls before the measured ones, in both runs (connections, caches, code paths)
WARM_BATCHES = 2


async def _child(redis_url: str, scenario: str, units: int, measured: bool) -> None:
    """Everything but the measured calls; then, if `measured`, `units` calls (batches of
    1000 for batch), 16 in flight. Both runs build and warm up the same."""
    sys.path.insert(0, str(HERE))
    import hot_path  # noqa: PLC0415 - from this folder, after the tree under test is on the path

    from assignsvc.v1 import assignment_service_pb2 as apb  # noqa: PLC0415

    call, _, close = await hot_path._stack(redis_url)
    hot_path.tune_collector()
    run = f"{os.getpid()}-{time.time_ns()}"
    if scenario == "batch":
        method, warm = "BatchAssign", WARM_BATCHES
        requests = [
            apb.BatchAssignRequest(
                requests=[
                    apb.AssignRequest(experiment_id="bench", participant_id=f"b{run}-{b}-{k}") for k in range(1000)
                ]
            ).SerializeToString()
            for b in range(warm + units)
        ]
    else:
        method, warm = "Assign", WARM_CALLS
        requests = [
            apb.AssignRequest(experiment_id="bench", participant_id=f"n{run}-{i}").SerializeToString()
            for i in range(warm + units)
        ]
        if scenario == "repeat":  # stored, then kept with its reply
            for _ in range(2):
                await hot_path._drive(call, method, requests)
    await hot_path._drive(call, method, requests[:warm])
    if measured:
        await hot_path._drive(call, method, requests[warm:])
    await close()


def _instructions(tree: str | None, redis_url: str, scenario: str, units: int, measured: bool) -> int:
    """Instructions of one child process (valgrind's "Collected" total)."""
    env = {**os.environ, **({"PYTHONPATH": tree} if tree else {})}
    command = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"]
    command += [sys.executable, __file__, "--child", redis_url, scenario, str(units), str(int(measured))]
    done = subprocess.run(command, env=env, check=True, capture_output=True, text=True)
    found = re.search(r"Collected : (\d+)", done.stderr)
    if found is None:
        raise SystemExit(f"no instruction count from valgrind:\n{done.stderr[-2000:]}")
    return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=300, help="Assign calls measured (repeat, new)")
    parser.add_argument("--batches", type=int, default=3, help="BatchAssign calls of 1000 measured")
    parser.add_argument("--compare", help="a source tree (its src/) to compare with")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        url, scenario, units, measured = args.child
        asyncio.run(_child(url, scenario, int(units), measured == "1"))
        return
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (Debian: apt-get install valgrind)")
    from assignsvc.store.redis_server import RedisServerProcess  # noqa: PLC0415

    trees = {"this tree": None, **({"compared": args.compare} if args.compare else {})}
    per_call: dict[str, dict[str, float]] = {name: {} for name in trees}
    with tempfile.TemporaryDirectory(prefix="assignsvc-ir-") as tmp:
        redis = RedisServerProcess(Path(tmp) / "redis", unix_socket=Path(tmp) / "redis.sock")
        redis.start()
        try:
            for scenario in SCENARIOS:
                units = args.batches if scenario == "batch" else args.calls
                items = units * 1000 if scenario == "batch" else units
                for name, tree in trees.items():
                    measured = _instructions(tree, redis.url, scenario, units, measured=True)
                    base = _instructions(tree, redis.url, scenario, units, measured=False)
                    per_call[name][scenario] = (measured - base) / items
                    print(f"{scenario:<8} {name:<10} {per_call[name][scenario]:>12,.0f}", file=sys.stderr, flush=True)
        finally:
            redis.stop()
    print(f"instructions per call (per item for batch), {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"{'scenario':<10}" + "".join(f"{name:>14}" for name in trees) + ("     ratio" if args.compare else ""))
    for scenario in SCENARIOS:
        values = [per_call[name][scenario] for name in trees]
        ratio = f"{values[0] / values[1]:>10.2f}" if len(values) > 1 else ""
        print(f"{scenario:<10}" + "".join(f"{v:>14,.0f}" for v in values) + ratio)


if __name__ == "__main__":
    main()
