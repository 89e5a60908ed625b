"""What the server interceptor, the metrics and authentication cost Assign: an A/B run in one go.

Starts a private Redis and, on it, `assignsvc serve` with the metrics port on (the
interceptor times every call into a histogram), with it off (the interceptor only
admits and counts calls in flight), and with API keys on (`--auth on`, every call
carrying a key: checksum, SHA-256, key ring lookup); with --base REV also the code of git revision REV
(e.g. the commit before the interceptor existed), from `git archive`, as a baseline
with no interceptor at all. The same closed-loop Assign load runs against each,
interleaved for several rounds; medians and ratios to the first server are reported.

    python benchmarks/interceptor_cost.py [--rounds 3] [--duration 3] [--concurrency 1 16] [--base REV]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_conditions import cpu_seconds
from load_assign import create_experiment, serving_process
from loadgen import LoadResult, run_load

from assignsvc.store.redis_server import RedisServerProcess

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A TCP port that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def export_revision(rev: str, into: Path) -> Path:
    """The src/ directory of git revision rev, extracted under into (rev may also name a
    directory holding such a src/, for a machine without the repository)."""
    if (Path(rev) / "src").is_dir():
        return Path(rev).resolve() / "src"
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "src"], check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into / "src"


class _Context:
    """The little of a ServicerContext the wrapper touches on the admitted path."""

    def code(self) -> None:
        return None

    def cancelled(self) -> bool:
        return False


async def _wrapper_cpu_us(record_metrics: bool | None, calls: int) -> float:
    """CPU microseconds per call of a trivial unary behavior, wrapped as the server does
    (record_metrics None: not wrapped). CPU time, not wall time: a busy machine slows it less."""
    import grpc  # noqa: PLC0415 - only this measurement needs it

    from assignsvc.api.interceptors import ServerInterceptor  # noqa: PLC0415

    async def behavior(request: object, context: object) -> object:
        return request

    call = behavior
    if record_metrics is not None:
        handler = grpc.unary_unary_rpc_method_handler(behavior)
        call = ServerInterceptor(1000, record_metrics)._wrap("Assign", handler).unary_unary
    context = _Context()
    started = time.process_time()
    for i in range(calls):
        await call(i, context)
    return (time.process_time() - started) / calls * 1e6


async def _lookup_cpu_us(calls: int, auth: bool = False) -> float:
    """CPU microseconds per call of the interceptor's checks (metadata, request id; with auth,
    the key check too), paid per call before the handler's own work."""
    from assignsvc.api.interceptors import ServerInterceptor  # noqa: PLC0415
    from assignsvc.app.access import KeyRing  # noqa: PLC0415
    from assignsvc.core.access import ApiKey, Datasource, Scope, key_digest, new_key  # noqa: PLC0415

    key = new_key()
    ring = KeyRing(None)  # type: ignore[arg-type]  # filled by hand: no store needed
    ring.replace([ApiKey("key_1", "default", key_digest(key), frozenset({Scope.ASSIGN}))], [Datasource("default")])

    class Details:
        method = "/assignsvc.v1.AssignmentService/Assign"
        invocation_metadata = (("user-agent", "bench"), ("x-api-key", key), ("datasource-id", "default"))

    interceptor, details = ServerInterceptor(1000, key_ring=ring if auth else None), Details()
    started = time.process_time()
    for _ in range(calls):
        assert interceptor._check(details.method, details.invocation_metadata) is None
    return (time.process_time() - started) / calls * 1e6


def wrapper_costs(calls: int = 200_000, rounds: int = 5) -> dict[str, float]:
    """Median CPU us per call: bare, wrapped with metrics off, wrapped with metrics on,
    and the per-call handler lookup with a generated request id."""
    out = {}
    for name, mode in (("bare handler", None), ("interceptor, metrics off", False), ("interceptor, metrics on", True)):
        out[name] = statistics.median(asyncio.run(_wrapper_cpu_us(mode, calls)) for _ in range(rounds))
    out["per-call checks"] = statistics.median(asyncio.run(_lookup_cpu_us(calls)) for _ in range(rounds))
    out["per-call checks + auth"] = statistics.median(
        asyncio.run(_lookup_cpu_us(calls, auth=True)) for _ in range(rounds)
    )
    return out


def bootstrap_key(redis_url: str) -> str:
    """An admin key of the default datasource, made as `assignsvc bootstrap` makes one."""
    out = subprocess.run(
        [sys.executable, "-m", "assignsvc", "bootstrap", "--redis-url", redis_url, "--datasource", "default"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return out.rsplit("(shown only now): ", 1)[1].split()[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per measurement")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--base", metavar="REV", help="also serve git revision REV's code (or DIR/src), as a baseline")
    parser.add_argument("--micro-only", action="store_true", help="only the in-process wrapper cost")
    args = parser.parse_args()

    for name, cpu_us in wrapper_costs().items():
        print(f"{name:<28}{cpu_us:7.2f} us CPU per call (in process, no gRPC)")
    if args.micro_only:
        return

    samples: dict[tuple[str, str, int], list[LoadResult]] = {}
    cpu_us: dict[tuple[str, str, int], list[float]] = {}  # server CPU per call: other processes do not inflate it
    with tempfile.TemporaryDirectory(prefix="assignsvc-icost-") as tmp:
        redis = RedisServerProcess(Path(tmp) / "redis", unix_socket=Path(tmp) / "redis.sock")
        redis.start()
        serve = [sys.executable, "-m", "assignsvc", "serve", "--port", "0", "--redis-url", redis.url]
        servers = {
            "metrics off": (serve, {}),
            "metrics on": ([*serve, "--metrics-port", str(free_port())], {}),
            "auth on": ([*serve, "--auth", "on"], {}),
        }
        key = bootstrap_key(redis.url)
        credentials = {"auth on": (("x-api-key", key), ("datasource-id", "default"))}
        if args.base:
            servers["base " + args.base] = (serve, {"PYTHONPATH": str(export_revision(args.base, Path(tmp)))})
        try:
            targets, pids = {}, {}
            contexts = [serving_process(cmd, env) for cmd, env in servers.values()]
            for name, context in zip(servers, contexts, strict=True):
                targets[name], pids[name] = context.__enter__()
            create_experiment(targets["metrics off"])
            run_id = time.time_ns()
            for round_no in range(args.rounds):
                for concurrency in args.concurrency:
                    for name, target in targets.items():
                        for scenario, ids in {
                            "repeat": lambda i: f"r-{run_id}-{i % 1000}",
                            "new": lambda i, n=name, r=round_no, c=concurrency: f"n-{n}-{run_id}-{r}-{c}-{i}",
                        }.items():
                            cpu_before = cpu_seconds(pids[name])
                            result = asyncio.run(
                                run_load(
                                    target, "bench", ids, concurrency, args.duration, metadata=credentials.get(name, ())
                                )
                            )
                            # The warm-up's calls are in the CPU time but not in result.calls: a
                            # small overstatement, the same for every server.
                            per_call = (cpu_seconds(pids[name]) - cpu_before) / max(1, result.calls) * 1e6
                            cpu_us.setdefault((scenario, name, concurrency), []).append(per_call)
                            samples.setdefault((scenario, name, concurrency), []).append(result)
                            print(
                                f"round {round_no + 1} c={concurrency:<3} {scenario:<7} {name:<16} "
                                f"{result.rps:8.0f} rps p50 {result.p50_us:6.0f}us errors {result.errors}",
                                file=sys.stderr,
                            )
            for context in contexts:
                context.__exit__(None, None, None)
        finally:
            redis.stop()

    print(
        f"\n{'scenario':<9}{'server':<18}{'conc':>5}{'RPS':>9}{'vs first':>10}{'p50 us':>9}{'p99 us':>9}"
        f"{'CPU us/call':>13}{'vs first':>10}"
    )
    first = next(iter(servers))
    for (scenario, name, concurrency), results in samples.items():
        base = statistics.median(r.rps for r in samples[(scenario, first, concurrency)])
        rps = statistics.median(r.rps for r in results)
        cpu = statistics.median(cpu_us[(scenario, name, concurrency)])
        cpu_base = statistics.median(cpu_us[(scenario, first, concurrency)])
        print(
            f"{scenario:<9}{name:<18}{concurrency:>5}{rps:>9.0f}{rps / base:>9.1%} "
            f"{statistics.median(r.p50_us for r in results):>8.0f}"
            f"{statistics.median(r.p99_us for r in results):>9.0f}{cpu:>13.0f}{cpu / cpu_base:>9.1%}"
        )


if __name__ == "__main__":
    main()
