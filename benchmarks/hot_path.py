"""The service's own Python on the Assign path, in CPU microseconds per call, no gRPC.

On a machine shared with other work, served RPS moves by 20-50% from round to round;
the CPU this process spends per call does not. This script builds what a server call
runs through (the interceptor's handler lookup and wrapper, the bytes-in handler, the
servicer, the Assigner with its sticky cache, the pipelined claim store on the fast pipe
to a real Redis on a unix socket) and drives it in process with 16 calls in flight,
timing the process's CPU (time.process_time) per call:

  repeat   Assign of participants already stored (sticky-cache hits)
  new      Assign of participants never seen (one claim each, pipelined)
  batch    BatchAssign of 1000 new participants, per item

With `--compare SRC` the same runs in a child process on another source tree (e.g. the
previous commit's src/), interleaved round by round, and the ratio is reported: what a
change saved or cost, with machine noise mostly out of it. What gRPC itself costs per
call is measured by light_load.py (the empty handler's server CPU).

    python benchmarks/hot_path.py [--rounds 5] [--calls 20000] [--compare ../main/src]
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
from pathlib import Path
from typing import Any

CONCURRENCY = 16


class _Context:
    """What the interceptor's wrapper, the handler and the servicer touch on an admitted call."""

    def invocation_metadata(self) -> tuple[()]:
        return ()

    def time_remaining(self) -> float | None:
        return None

    def code(self) -> None:
        return None

    def cancelled(self) -> bool:
        return False


class _Details:
    def __init__(self, method: str) -> None:
        self.method = method
        self.invocation_metadata: tuple[()] = ()


async def _stack(redis_url: str) -> tuple[Any, Any, Any]:
    """(call(method, raw bytes) -> reply bytes, the assigner, closer) over the real pieces."""
    import grpc  # noqa: PLC0415 - imported from the tree under test (PYTHONPATH)

    from assignsvc.api.assignment_servicer import AssignmentServicer  # noqa: PLC0415
    from assignsvc.api.handlers import method_handler, service_of  # noqa: PLC0415
    from assignsvc.api.interceptors import ServerInterceptor  # noqa: PLC0415
    from assignsvc.app.assign import Assigner  # noqa: PLC0415
    from assignsvc.app.registry import ExperimentRegistry  # noqa: PLC0415
    from assignsvc.config import ServerConfig  # noqa: PLC0415
    from assignsvc.core.model import Arm, Experiment, ExperimentStatus  # noqa: PLC0415
    from assignsvc.server.wiring import _assignment_stores  # noqa: PLC0415
    from assignsvc.store.connection import connect  # noqa: PLC0415
    from assignsvc.store.keys import Keyspace  # noqa: PLC0415
    from assignsvc.store.sticky_cache import StickyCache  # noqa: PLC0415

    config = ServerConfig(port=0, redis_url=redis_url)
    redis = connect(redis_url, config.redis_timeout_s)
    store, fast_pipe, _, bulk_pipe = _assignment_stores(redis, redis_url, Keyspace(f"hp{os.getpid()}"), config)
    registry = ExperimentRegistry(None, 3600)  # type: ignore[arg-type]  # put() only
    arms = (Arm("control", "control", 0.5), Arm("treatment", "treatment", 0.5))
    registry.put(Experiment(id="bench", name="bench", arms=arms, status=ExperimentStatus.RUNNING))
    assigner = Assigner(
        registry, store, cache=StickyCache(config.cache_size), store_timeout_s=2 * config.redis_timeout_s
    )
    servicer = AssignmentServicer(assigner)
    service = service_of(type(servicer))
    interceptor = ServerInterceptor(config.max_concurrent_rpcs, record_metrics=False, key_ring=None)
    handlers = {
        m.name: method_handler(m, getattr(servicer, m.name))
        for m in service.methods
        if m.name in ("Assign", "BatchAssign")
    }
    context = _Context()

    if hasattr(interceptor, "wrap"):  # the checks inside each handler, as the server registers them
        wrapped = {name: interceptor.wrap(f"/{service.full_name}/{name}", h) for name, h in handlers.items()}

        async def call(name: str, raw: bytes) -> bytes:
            handler = wrapped[name]
            serialized: bytes = handler.response_serializer(await handler.unary_unary(raw, context))
            return serialized

    else:  # an older tree: the interceptor's own entry point, per call

        async def call(name: str, raw: bytes) -> bytes:
            handler = handlers[name]

            async def continuation(details: Any) -> Any:
                return handler

            found = await interceptor.intercept_service(continuation, _Details(f"/{service.full_name}/{name}"))
            serialized: bytes = found.response_serializer(await found.unary_unary(raw, context))
            return serialized

    async def close() -> None:
        for pipe in (fast_pipe, bulk_pipe):
            if pipe is not None:
                await pipe.close()
        await redis.aclose()

    del grpc
    return call, assigner, close


def tune_collector() -> None:
    """The serving process's collector settings, where the tree under test has them."""
    try:
        from assignsvc.server.wiring import tune_gc  # noqa: PLC0415
    except ImportError:
        return
    tune_gc()


async def _drive(call: Any, name: str, requests: list[bytes]) -> float:
    """CPU seconds of this process to answer every request, CONCURRENCY in flight."""
    position = iter(range(len(requests)))

    async def worker() -> None:
        for i in position:
            await call(name, requests[i])

    started = time.process_time()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return time.process_time() - started


async def child(redis_url: str, rounds: int, calls: int) -> dict[str, list[float]]:
    """Every scenario `rounds` times; CPU us per call (per item for batch)."""
    from assignsvc.v1 import assignment_service_pb2 as apb  # noqa: PLC0415

    call, _, close = await _stack(redis_url)
    tune_collector()
    run = f"{os.getpid()}-{time.time_ns()}"
    pool = [
        apb.AssignRequest(experiment_id="bench", participant_id=f"r{run}-{i}").SerializeToString() for i in range(2000)
    ]
    for _ in range(2):  # stored, then cached with its reply
        await _drive(call, "Assign", pool)
    out: dict[str, list[float]] = {"repeat": [], "new": [], "batch": []}
    try:
        for r in range(rounds):
            out["repeat"].append(await _drive(call, "Assign", pool * (calls // len(pool))) / calls * 1e6)
            new = [
                apb.AssignRequest(experiment_id="bench", participant_id=f"n{run}-{r}-{i}").SerializeToString()
                for i in range(calls)
            ]
            out["new"].append(await _drive(call, "Assign", new) / calls * 1e6)
            batches = [
                apb.BatchAssignRequest(
                    requests=[
                        apb.AssignRequest(experiment_id="bench", participant_id=f"b{run}-{r}-{b}-{k}")
                        for k in range(1000)
                    ]
                ).SerializeToString()
                for b in range(max(4, calls // 1000))
            ]
            out["batch"].append(await _drive(call, "BatchAssign", batches) / (len(batches) * 1000) * 1e6)
    finally:
        await close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--compare", help="a source tree (its src/) to compare with, in a child process")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(asyncio.run(child(args.child, args.rounds, args.calls))))
        return
    from assignsvc.store.redis_server import RedisServerProcess  # noqa: PLC0415

    with tempfile.TemporaryDirectory(prefix="assignsvc-hot-") as tmp:
        redis = RedisServerProcess(Path(tmp) / "redis", unix_socket=Path(tmp) / "redis.sock")
        redis.start()
        try:
            trees = {"this tree": None, **({"compared": args.compare} if args.compare else {})}
            results: dict[str, dict[str, list[float]]] = {name: {} for name in trees}
            for _ in range(args.rounds):  # one round each, alternating: noise hits both
                for name, src in trees.items():
                    env = {**os.environ, **({"PYTHONPATH": src} if src else {})}
                    command = [
                        sys.executable,
                        __file__,
                        "--child",
                        redis.url,
                        "--rounds",
                        "1",
                        "--calls",
                        str(args.calls),
                    ]
                    got = json.loads(
                        subprocess.run(command, env=env, check=True, capture_output=True, text=True).stdout
                    )
                    for scenario, values in got.items():
                        results[name].setdefault(scenario, []).extend(values)
        finally:
            redis.stop()
    print(
        f"CPU us per call (per item for batch), medians of {args.rounds} rounds, load average {os.getloadavg()[0]:.1f}"
    )
    print(f"{'scenario':<10}" + "".join(f"{name:>14}" for name in trees) + ("     ratio" if args.compare else ""))
    for scenario in ("repeat", "new", "batch"):
        medians = [statistics.median(results[name][scenario]) for name in trees]
        ratio = f"{medians[0] / medians[1]:>10.2f}" if len(medians) > 1 else ""
        print(f"{scenario:<10}" + "".join(f"{m:>14.1f}" for m in medians) + ratio)


if __name__ == "__main__":
    main()
