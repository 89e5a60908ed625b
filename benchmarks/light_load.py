"""The server's cost per call, measured with a client too light to bound it.

Why: a client that builds a protobuf message and records a pure-Python histogram per
call spends as much CPU as the server on the same cores, and squeezes every ratio
towards 1. Here every request is serialized before the clock starts and sent through a
raw `channel.unary_unary(method)` with no serializers; latencies go into an `array` of
integers, sorted into percentiles after the round. Beside RPS and p50/p99 each scenario
reports the SERVER's CPU per call (utime + stime from /proc, summed over its worker
processes) and Redis' CPU per call (used_cpu_sys + used_cpu_user, and the claim
script's own usec from INFO commandstats), so the figure holds even when the client
shares the machine.

Scenarios, interleaved in every round so that machine noise hits them alike:
  empty        benchmarks/empty_server.py: the same Assign method path, a constant reply
  repeat       Assign, participants cycled from a pool assigned before the first round
  new          Assign, a participant never seen before on every call
  stream       StreamAssign of new participants, 4 streams with 64 requests in flight each
  batch        BatchAssign of 1000 new participants, 4 calls in flight
  setnx        raw pipelined `SET NX GET` on the same Redis (RESP encoded up front, 1000 a
               pipeline, 4 connections, hiredis replies): what Redis itself takes
  empty c=1 / new c=1 / PING c=1   the latency target: new <= empty + a Redis round trip + 50 us
With `--compare SRC` a second assignsvc runs from another source tree (e.g. a checkout
of the previous commit) and repeat / new / stream / batch run against both, interleaved.
With `--claims` the claim script's Redis CPU is measured directly for new and returning
rows (100 claims a script call, as the server sends them).

    python benchmarks/light_load.py [--rounds 3] [--seconds 3] [--concurrency 16]
                                    [--processes 1] [--workers 1] [--compare ../main/src]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from array import array
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import grpc
from redis import Redis as SyncRedis

sys.path.insert(0, str(Path(__file__).resolve().parent))
from load_assign import create_experiment, serving_process

from assignsvc.store.fastpipe import FastScriptPipe, encode_command
from assignsvc.store.redis_server import RedisServerProcess
from assignsvc.v1 import assignment_service_pb2 as apb

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
ASSIGN = "/assignsvc.v1.AssignmentService/Assign"
BATCH = "/assignsvc.v1.AssignmentService/BatchAssign"
STREAM = "/assignsvc.v1.AssignmentService/StreamAssign"
STREAM_IN_FLIGHT = 64  # requests a stream has sent and not yet had answered (the server's window)
EXPERIMENT = "bench"
BATCH_SIZE = 1000
TICK = os.sysconf("SC_CLK_TCK")


# --- what a process and Redis spend ------------------------------------------------------


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            tree.setdefault(parent, []).append(int(entry.name))
    return tree


def tree_cpu_s(pid: int) -> float:
    """utime + stime of a process and its descendants (a supervisor's workers), seconds."""
    tree, total, todo = _children(), 0.0, [pid]
    while todo:
        current = todo.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / TICK
        todo.extend(tree.get(current, ()))
    return total


def redis_info(client: Any) -> dict[str, float]:
    """Redis' CPU seconds (sys + user) and the EVALSHA calls and usec, from INFO (redis-py, sync)."""
    cpu, stats = client.info("cpu"), client.info("commandstats")
    evalsha = stats.get("cmdstat_evalsha", {})
    return {
        "cpu_s": float(cpu["used_cpu_sys"]) + float(cpu["used_cpu_user"]),
        "evalsha_calls": float(evalsha.get("calls", 0)),
        "evalsha_usec": float(evalsha.get("usec", 0)),
    }


# --- the client --------------------------------------------------------------------------


@dataclass
class Share:
    """One load process's part of a round."""

    target: str
    method: str
    requests: list[bytes]
    concurrency: int
    seconds: float


def _run_share(share: Share) -> tuple[int, int, bytes]:
    """(calls, errors, latencies in ns as array bytes) of one process."""
    calls, errors, latencies = asyncio.run(_closed_loop(share))
    return calls, errors, latencies.tobytes()


async def _closed_loop(share: Share) -> tuple[int, int, array[int]]:
    if share.method == STREAM:
        return await _streams(share)
    latencies: array[int] = array("q")
    record = latencies.append
    errors = 0
    requests, count = share.requests, len(share.requests)
    async with grpc.aio.insecure_channel(share.target) as channel:
        call = channel.unary_unary(share.method)  # bytes in, bytes out: no serializer
        await call(requests[0])  # connect before the clock
        next_index = iter(range(1, 1 << 62))
        deadline = time.perf_counter() + share.seconds

        async def worker() -> None:
            nonlocal errors
            clock = time.perf_counter_ns
            while time.perf_counter() < deadline:
                request = requests[next(next_index) % count]
                started = clock()
                try:
                    await call(request)
                except grpc.aio.AioRpcError:
                    errors += 1
                record(clock() - started)

        await asyncio.gather(*(worker() for _ in range(share.concurrency)))
    return len(latencies), errors, latencies


def _is_error(reply: bytes) -> bool:
    """Whether a StreamAssignResponse's result holds `error` (field 2), not `assignment`:
    the tag after the result's length varint."""
    i = 1
    while reply[i] & 0x80:
        i += 1
    return reply[i + 1] == 0x12


async def _streams(share: Share) -> tuple[int, int, array[int]]:
    """share.concurrency StreamAssign streams, each keeping STREAM_IN_FLIGHT requests
    unanswered; latencies per item, from its write to its answer (answers come in order)."""
    latencies: array[int] = array("q")
    record = latencies.append
    errors = 0
    requests, count = share.requests, len(share.requests)
    next_index = iter(range(1 << 62))
    async with grpc.aio.insecure_channel(share.target) as channel:
        await channel.channel_ready()
        deadline = time.perf_counter() + share.seconds

        async def stream() -> None:
            nonlocal errors
            call = channel.stream_stream(STREAM)()  # bytes in, bytes out: no serializer
            sent: collections.deque[int] = collections.deque()
            room = asyncio.Semaphore(STREAM_IN_FLIGHT)
            clock = time.perf_counter_ns

            async def write() -> None:
                while time.perf_counter() < deadline:
                    await room.acquire()
                    sent.append(clock())
                    await call.write(requests[next(next_index) % count])
                await call.done_writing()

            writer = asyncio.create_task(write())
            try:
                async for reply in call:
                    record(clock() - sent.popleft())
                    errors += _is_error(reply)
                    room.release()
            except grpc.aio.AioRpcError:
                errors += 1
            await writer

        await asyncio.gather(*(stream() for _ in range(share.concurrency)))
    return len(latencies), errors, latencies


@dataclass
class Figure:
    """One scenario's round: calls/s, latency percentiles, CPU per call of server and Redis."""

    rps: float
    p50_us: float
    p99_us: float
    errors: int
    server_us: float
    redis_us: float
    script_us: float  # the claim script's own usec per item (INFO commandstats)


def run_round(share: Share, processes: int, server_pid: int | None, redis: Any, items_per_call: int = 1) -> Figure:
    """The load from `processes` processes; the server's and Redis' CPU around it."""
    before_cpu = tree_cpu_s(server_pid) if server_pid else 0.0
    before_redis = redis_info(redis)
    started = time.perf_counter()
    if processes == 1:
        parts = [_run_share(share)]
    else:
        per = [share.concurrency // processes + (p < share.concurrency % processes) for p in range(processes)]
        shares = [
            Share(share.target, share.method, share.requests[p::processes], c, share.seconds) for p, c in enumerate(per)
        ]
        with multiprocessing.get_context("spawn").Pool(processes) as pool:
            parts = pool.map(_run_share, shares)
    elapsed = time.perf_counter() - started
    after_redis = redis_info(redis)
    server_s = (tree_cpu_s(server_pid) - before_cpu) if server_pid else 0.0
    latencies: array[int] = array("q")
    for _, _, raw in parts:
        latencies.frombytes(raw)
    ordered = sorted(latencies)
    calls = sum(c for c, _, _ in parts)
    items = max(1, calls * items_per_call)
    return Figure(
        rps=calls * items_per_call / min(elapsed, share.seconds + 0.5),
        p50_us=ordered[len(ordered) // 2] / 1000 if ordered else 0.0,
        p99_us=ordered[int(len(ordered) * 0.99)] / 1000 if ordered else 0.0,
        errors=sum(e for _, e, _ in parts),
        server_us=server_s / items * 1e6,
        redis_us=(after_redis["cpu_s"] - before_redis["cpu_s"]) / items * 1e6,
        script_us=(after_redis["evalsha_usec"] - before_redis["evalsha_usec"]) / items,
    )


def assign_requests(prefix: str, count: int) -> list[bytes]:
    return [
        apb.AssignRequest(experiment_id=EXPERIMENT, participant_id=f"{prefix}{i}").SerializeToString()
        for i in range(count)
    ]


def stream_requests(prefix: str, count: int) -> list[bytes]:
    return [
        apb.StreamAssignRequest(experiment_id=EXPERIMENT, participant_id=f"{prefix}{i}").SerializeToString()
        for i in range(count)
    ]


def batch_requests(prefix: str, count: int) -> list[bytes]:
    return [
        apb.BatchAssignRequest(
            requests=[
                apb.AssignRequest(experiment_id=EXPERIMENT, participant_id=f"{prefix}{b}-{k}")
                for k in range(BATCH_SIZE)
            ]
        ).SerializeToString()
        for b in range(count)
    ]


# --- Redis alone -------------------------------------------------------------------------


async def setnx_round(url: str, info: Any, seconds: float, run: str, *, clients: int = 4, depth: int = 1000) -> Figure:
    """Pipelined SET NX GET rows/s, RESP encoded before the clock; Redis CPU per row."""
    batches = [
        [encode_command("SET", f"sx:{run}:{c}:{b}:{k}", "v", "NX", "GET") for k in range(depth)]
        for c in range(clients)
        for b in range(40)
    ]
    pipes = [FastScriptPipe(url, "return 1", 10.0) for _ in range(clients)]
    done = 0
    try:
        before = redis_info(info)
        deadline = time.perf_counter() + seconds

        async def client(c: int) -> None:
            nonlocal done
            b = 0
            while time.perf_counter() < deadline and b < 40:
                await pipes[c].execute(batches[c * 40 + b])
                b += 1
                done += depth

        started = time.perf_counter()
        await asyncio.gather(*(client(c) for c in range(clients)))
        elapsed = time.perf_counter() - started
        after = redis_info(info)
    finally:
        for pipe in pipes:
            await pipe.close()
    return Figure(done / elapsed, 0, 0, 0, 0, (after["cpu_s"] - before["cpu_s"]) / done * 1e6, 0)


async def ping_round(url: str, seconds: float) -> Figure:
    """Sequential PINGs on one connection of the thin client the server uses."""
    pipe = FastScriptPipe(url, "return 1", 5.0)
    ping = [encode_command("PING")]
    latencies: array[int] = array("q")
    try:
        await pipe.execute(ping)
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            started = time.perf_counter_ns()
            await pipe.execute(ping)
            latencies.append(time.perf_counter_ns() - started)
    finally:
        await pipe.close()
    ordered = sorted(latencies)
    return Figure(
        len(ordered) / seconds, ordered[len(ordered) // 2] / 1000, ordered[len(ordered) * 99 // 100] / 1000, 0, 0, 0, 0
    )


async def claim_script_cost(url: str, info: Any, rows: int = 20_000) -> dict[str, float]:
    """The claim script's Redis CPU per claim (INFO commandstats usec), 100 claims a call:
    new rows, then the same rows again (returning participants)."""
    from assignsvc.core.model import Arm, Experiment  # noqa: PLC0415 - only this figure needs them
    from assignsvc.store.claims import ClaimCodec  # noqa: PLC0415
    from assignsvc.store.keys import Keyspace  # noqa: PLC0415
    from assignsvc.store.transports import FastPipeTransport  # noqa: PLC0415

    arms = (Arm("a", "a", 0.5), Arm("b", "b", 0.5))
    experiment = Experiment(id=f"claimcost-{time.time_ns()}", name="claim cost", arms=arms)
    transport = FastPipeTransport(url, 10.0, ClaimCodec(Keyspace("bench")))
    out: dict[str, float] = {}
    try:
        for label in ("new", "returning"):
            before = redis_info(info)
            for start in range(0, rows, 1000):
                await transport.run([(experiment, f"c{i}", i % 2, 1) for i in range(start, start + 1000)])
            after = redis_info(info)
            out[f"script_us_per_claim_{label}"] = (after["evalsha_usec"] - before["evalsha_usec"]) / rows
            out[f"redis_cpu_us_per_claim_{label}"] = (after["cpu_s"] - before["cpu_s"]) / rows * 1e6
    finally:
        await transport.pipe.close()
    return out


# --- the driver --------------------------------------------------------------------------


UVLOOP = (
    "import asyncio, sys, uvloop; asyncio.set_event_loop_policy(uvloop.EventLoopPolicy());"
    " from assignsvc.cli.main import main; sys.exit(main())"
)


def _serve(
    stack: ExitStack,
    redis_url: str,
    workers: int,
    src: str | None,
    cache: int,
    *,
    uvloop: bool = False,
    pipelines: int | None = None,
) -> tuple[str, int]:
    env = {"PYTHONPATH": src} if src else {}
    env["ASSIGNSVC_CACHE_SIZE"] = str(cache)
    if pipelines is not None:
        env["ASSIGNSVC_REDIS_PIPELINES"] = str(pipelines)
    command = ["-c", UVLOOP] if uvloop else ["-m", "assignsvc"]
    args = [sys.executable, *command, "serve", "--port", "0", "--redis-url", redis_url, "--workers", str(workers)]
    return stack.enter_context(serving_process(args, env))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--processes", type=int, default=1, help="load processes sharing the concurrency")
    parser.add_argument(
        "--workers", type=int, nargs="+", default=[1], help="serve --workers N; more values: one server each, A/B"
    )
    parser.add_argument("--compare", help="a second assignsvc from this source tree (PYTHONPATH), A/B in each round")
    parser.add_argument("--pipelines", type=int, nargs="*", default=[], help="servers with these REDIS_PIPELINES")
    parser.add_argument("--uvloop", action="store_true", help="a second assignsvc on uvloop, A/B in each round")
    parser.add_argument("--repeat-ids", type=int, default=2000)
    parser.add_argument("--only", nargs="+", help="scenarios to run (default: all)")
    parser.add_argument("--claims", action="store_true", help="also the claim script's cost per new / returning row")
    parser.add_argument("--out", default="light_load.json")
    args = parser.parse_args()
    c, seconds = args.concurrency, args.seconds
    figures: dict[str, list[Figure]] = {}
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="assignsvc-light-")))
        redis = RedisServerProcess(tmp / "redis", unix_socket=tmp / "redis.sock")
        redis.start()
        stack.callback(redis.stop)
        workers, *more_workers = args.workers
        servers = {"": _serve(stack, redis.url, workers, None, 100_000)}
        for count in more_workers:
            servers[f"w{count} "] = _serve(stack, redis.url, count, None, 100_000)
        for count in args.pipelines:  # the same code with another ASSIGNSVC_REDIS_PIPELINES
            servers[f"p{count} "] = _serve(stack, redis.url, workers, None, 100_000, pipelines=count)
        if args.compare:
            servers["base "] = _serve(stack, redis.url, workers, args.compare, 100_000)
        if args.uvloop:  # the same code on uvloop's event loop
            servers["uvloop "] = _serve(stack, redis.url, workers, None, 100_000, uvloop=True)
        empty = stack.enter_context(serving_process([sys.executable, str(HERE / "empty_server.py")]))
        icpt = stack.enter_context(serving_process([sys.executable, str(HERE / "empty_server.py"), "--interceptor"]))
        awaiting = stack.enter_context(serving_process([sys.executable, str(HERE / "empty_server.py"), "--suspend"]))
        create_experiment(servers[""][0])
        probe = SyncRedis.from_url(redis.url)
        pool = assign_requests("repeat-", args.repeat_ids)
        for target, _ in servers.values():  # the repeat pool: stored, and in each server's sticky cache
            asyncio.run(_send_each(target, pool))
        rate = 20_000  # ids prepared per second of a round: more than any round sends
        scenarios: list[tuple[str, Callable[[int], Figure]]] = [
            (
                f"empty c={c}",
                lambda r: run_round(Share(empty[0], ASSIGN, pool, c, seconds), args.processes, empty[1], probe),
            ),
            (
                f"empty+icpt c={c}",
                lambda r: run_round(Share(icpt[0], ASSIGN, pool, c, seconds), args.processes, icpt[1], probe),
            ),
            (
                f"empty+await c={c}",
                lambda r: run_round(Share(awaiting[0], ASSIGN, pool, c, seconds), args.processes, awaiting[1], probe),
            ),
        ]
        for label, (target, pid) in servers.items():
            scenarios += [
                (
                    f"{label}repeat c={c}",
                    lambda r, t=target, p=pid: _repeat_round(
                        Share(t, ASSIGN, pool, c, seconds), args.processes, p, probe
                    ),
                ),
                (
                    f"{label}new c={c}",
                    lambda r, t=target, p=pid, lb=label: run_round(
                        Share(t, ASSIGN, assign_requests(f"n{lb.strip()}{r}-", int(rate * seconds)), c, seconds),
                        args.processes,
                        p,
                        probe,
                    ),
                ),
                (
                    f"{label}stream x4",
                    lambda r, t=target, p=pid, lb=label: run_round(
                        Share(t, STREAM, stream_requests(f"s{lb.strip()}{r}-", int(rate * 2 * seconds)), 4, seconds),
                        1,
                        p,
                        probe,
                    ),
                ),
                (
                    f"{label}batch x{BATCH_SIZE} c=4",
                    lambda r, t=target, p=pid, lb=label: run_round(
                        Share(t, BATCH, batch_requests(f"b{lb.strip()}{r}-", int(150 * seconds)), 4, seconds),
                        1,
                        p,
                        probe,
                        BATCH_SIZE,
                    ),
                ),
            ]
        scenarios += [
            ("setnx P1000 x4", lambda r: asyncio.run(setnx_round(redis.url, probe, seconds, f"{time.time_ns()}"))),
            ("empty c=1", lambda r: run_round(Share(empty[0], ASSIGN, pool, 1, seconds), 1, empty[1], probe)),
            (
                "new c=1",
                lambda r: run_round(
                    Share(servers[""][0], ASSIGN, assign_requests(f"u{r}-", int(5000 * seconds)), 1, seconds),
                    1,
                    servers[""][1],
                    probe,
                ),
            ),
            ("PING c=1", lambda r: asyncio.run(ping_round(redis.url, seconds))),
        ]
        if args.only:
            scenarios = [s for s in scenarios if any(s[0].startswith(o) for o in args.only)]
        for round_no in range(args.rounds):
            for name, run in scenarios:
                figure = run(round_no)
                figures.setdefault(name, []).append(figure)
                print(f"round {round_no + 1} {name:<24} {_line(figure)}", file=sys.stderr, flush=True)
        claims = asyncio.run(claim_script_cost(redis.url, probe)) if args.claims else {}
        probe.close()
    report(figures, claims, args)


def _repeat_round(share: Share, processes: int, server_pid: int, redis: Any) -> Figure:
    """The repeat pool sent once more first (a batch round may have pushed it out of a
    small sticky cache), then measured."""
    asyncio.run(_send_each(share.target, share.requests))
    return run_round(share, processes, server_pid, redis)


async def _send_each(target: str, requests: list[bytes]) -> None:
    async with grpc.aio.insecure_channel(target) as channel:
        call = channel.unary_unary(ASSIGN)
        for start in range(0, len(requests), 64):
            await asyncio.gather(*(call(r) for r in requests[start : start + 64]))


def _line(f: Figure) -> str:
    return (
        f"{f.rps:>10,.0f}/s p50 {f.p50_us:>8.0f} us p99 {f.p99_us:>8.0f} us server {f.server_us:>6.1f} us"
        f" redis {f.redis_us:>5.1f} us script {f.script_us:>5.1f} us" + (f" ERRORS {f.errors}" if f.errors else "")
    )


def _median(figures: list[Figure]) -> Figure:
    fields = asdict(figures[0]).keys()
    return Figure(**{k: statistics.median(getattr(f, k) for f in figures) for k in fields})


def _ratios(figures: dict[str, list[Figure]], name: str, base: str) -> Iterator[tuple[float, float]]:
    """Per round: (RPS ratio, server CPU ratio) of name to base."""
    for a, b in zip(figures.get(name, []), figures.get(base, []), strict=False):
        yield a.rps / b.rps if b.rps else 0.0, a.server_us / b.server_us if b.server_us else 0.0


def report(figures: dict[str, list[Figure]], claims: dict[str, float], args: argparse.Namespace) -> None:
    c = args.concurrency
    medians = {name: _median(rounds) for name, rounds in figures.items()}
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    print(f"\nmedians of {args.rounds} rounds of {args.seconds:.0f} s, {when}, load average {os.getloadavg()[0]:.1f}")
    for name, m in medians.items():
        print(f"{name:<26} {_line(m)}")
    ratios: dict[str, dict[str, float]] = {}
    for label in ("", "base ", "uvloop ", *(f"w{n} " for n in args.workers[1:]), *(f"p{n} " for n in args.pipelines)):
        for kind in ("repeat", "new", "empty+icpt", "empty+await"):
            pairs = list(_ratios(figures, f"{label}{kind} c={c}", f"empty c={c}"))
            if kind.startswith("empty") and label:
                continue
            if pairs:
                ratios[f"{label}{kind}"] = {
                    "rps_x_empty": statistics.median(p[0] for p in pairs),
                    "server_cpu_x_empty": statistics.median(p[1] for p in pairs),
                }
    print("\nper round, then the median:")
    for name, r in ratios.items():
        print(
            f"  {name:<12} RPS {r['rps_x_empty']:.2f}x empty, server CPU per call {r['server_cpu_x_empty']:.2f}x empty"
        )
    batch, setnx = medians.get(f"batch x{BATCH_SIZE} c=4"), medians.get("setnx P1000 x4")
    if batch and setnx:
        per_round = [
            b.rps / s.rps for b, s in zip(figures[f"batch x{BATCH_SIZE} c=4"], figures["setnx P1000 x4"], strict=False)
        ]
        print(
            f"  batch        {statistics.median(per_round):.3f} of SET NX GET rows/s,"
            f" {batch.server_us:.1f} us server CPU per item"
        )
    if "new c=1" in medians and "empty c=1" in medians and "PING c=1" in medians:
        new, empty, ping = medians["new c=1"], medians["empty c=1"], medians["PING c=1"]
        bound = empty.p50_us + ping.p50_us + 50
        print(
            f"  c=1 p50      new {new.p50_us:.0f} us vs empty {empty.p50_us:.0f}"
            f" + PING {ping.p50_us:.0f} + 50 = {bound:.0f} us"
        )
    for name, value in claims.items():
        print(f"  {name:<34} {value:.2f} us")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / args.out
    out.write_text(
        json.dumps(
            {
                "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                "machine": {"cpus": os.cpu_count(), "load_average": os.getloadavg()},
                "args": vars(args),
                "medians": {k: asdict(v) for k, v in medians.items()},
                "rounds": {k: [asdict(f) for f in v] for k, v in figures.items()},
                "ratios": ratios,
                "claims": claims,
            },
            indent=2,
        )
    )
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
