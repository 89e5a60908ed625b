"""HTTP load: the transcoded v1 Assign, Evidential's assignment route and OFREP's single
evaluation against an empty aiohttp handler on the same event loop settings, in
interleaved rounds.

The baseline is this script's own `--empty-server` mode: the same aiohttp AppRunner
settings as assignsvc's HTTP edge (no access log, same keep-alive), the same paths, a
constant body. The client is light on purpose: raw asyncio streams, keep-alive
connections, every request pre-built as bytes (new participants get ids never sent
before; repeats cycle through ids already assigned). Rounds alternate baseline and
assignsvc so that machine noise hits both alike. Reported per case: RPS, p50/p99 latency,
and the server's CPU per call read from /proc/PID/stat (utime + stime), beside the
baseline's; the aim is new participants >= 0.6x and repeats >= 0.8x the baseline's RPS.

    python benchmarks/http_load.py [--rounds 5] [--seconds 5] [--connections 32]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

CASES = (
    "transcoded-new",
    "transcoded-repeat",
    "evidential-new",
    "evidential-repeat",
    "ofrep-new",
    "ofrep-repeat",
)
TRANSCODED = "/v1/experiments/{experiment_id}/participants/{participant_id:[^/]+}:assign"
EXPERIMENT = "bench"
RESULTS = Path(__file__).resolve().parent / "results"


def free_port() -> int:
    import socket  # noqa: PLC0415 - only the driver needs it

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- the baseline server ------------------------------------------------------------------


def run_empty_server(port: int) -> None:
    """Constant answers on assignsvc's paths, with the HTTP edge's AppRunner settings."""
    from aiohttp import web  # noqa: PLC0415

    from assignsvc.api.http.app import KEEPALIVE_TIMEOUT_S  # noqa: PLC0415

    assignment = json.dumps({"experiment_id": EXPERIMENT, "participant_id": "p", "assignment": None}).encode()
    evaluation = json.dumps({"key": EXPERIMENT, "reason": "SPLIT", "variant": "a0", "value": "a0"}).encode()
    transcoded = json.dumps(
        {"assignment": {"experimentId": EXPERIMENT, "participantId": "p", "inExperiment": True, "arm": {"id": "a0"}}}
    ).encode()

    async def assign(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=transcoded, content_type="application/json")

    async def evidential(request: web.Request) -> web.Response:
        return web.Response(body=assignment, content_type="application/json")

    async def ofrep(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=evaluation, content_type="application/json")

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/evidential/v1/experiments/{experiment_id}/assignments/{participant_id}", evidential)
        app.router.add_post("/ofrep/v1/evaluate/flags/{key}", ofrep)
        app.router.add_post(TRANSCODED, assign)
        runner = web.AppRunner(app, access_log=None, handle_signals=False, keepalive_timeout=KEEPALIVE_TIMEOUT_S)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port, backlog=1024).start()
        stop = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            asyncio.get_running_loop().add_signal_handler(signum, stop.set)
        await stop.wait()
        await runner.cleanup()

    asyncio.run(main())


# --- the client -------------------------------------------------------------------------


def requests_for(case: str, port: int, count: int, offset: int) -> list[bytes]:
    """Pre-built requests; participant ids offset..offset+count."""
    host = f"Host: 127.0.0.1:{port}\r\n"
    out = []
    for i in range(offset, offset + count):
        participant = f"p{i}"
        if case.startswith("evidential"):
            path = f"/evidential/v1/experiments/{EXPERIMENT}/assignments/{participant}"
            out.append(f"GET {path} HTTP/1.1\r\n{host}\r\n".encode())
        elif case.startswith("transcoded"):
            path = f"/v1/experiments/{EXPERIMENT}/participants/{participant}:assign"
            head = f"POST {path} HTTP/1.1\r\n{host}Content-Type: application/json\r\nContent-Length: 2\r\n\r\n"
            out.append(head.encode() + b"{}")
        else:
            body = json.dumps({"context": {"targetingKey": participant}}).encode()
            head = (
                f"POST /ofrep/v1/evaluate/flags/{EXPERIMENT} HTTP/1.1\r\n{host}"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            )
            out.append(head.encode() + body)
    return out


@dataclass
class Round:
    calls: int = 0
    errors: int = 0
    latencies: list[float] = field(default_factory=list)
    seconds: float = 0.0
    cpu_s: float = 0.0


async def _connection(
    port: int, requests: list[bytes], start: int, step: int, *, stop_at: float, out: Round, once: bool = False
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    i = start
    try:
        while time.perf_counter() < stop_at and not (once and i >= len(requests)):
            sent = time.perf_counter()
            writer.write(requests[i % len(requests)])
            i += step
            status_line = await reader.readline()
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            out.latencies.append(time.perf_counter() - sent)
            out.calls += 1
            if not status_line.startswith(b"HTTP/1.1 200"):
                out.errors += 1
    finally:
        writer.close()


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measure(port: int, pid: int, requests: list[bytes], seconds: float, connections: int) -> Round:
    out = Round()
    cpu_before, started = cpu_seconds(pid), time.perf_counter()
    stop_at = started + seconds
    await asyncio.gather(
        *(_connection(port, requests, k, connections, stop_at=stop_at, out=out) for k in range(connections))
    )
    out.seconds, out.cpu_s = time.perf_counter() - started, cpu_seconds(pid) - cpu_before
    return out


async def send_each_once(port: int, requests: list[bytes], connections: int) -> None:
    """Every request once (to assign the participants that the repeat cases ask about)."""
    out = Round()
    stop_at = time.perf_counter() + 600
    await asyncio.gather(
        *(_connection(port, requests, k, connections, stop_at=stop_at, out=out, once=True) for k in range(connections))
    )


# --- the driver -------------------------------------------------------------------------


def _wait_listening(port: int, process: subprocess.Popen[bytes], timeout_s: float = 30.0) -> None:
    import socket  # noqa: PLC0415

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited with {process.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise SystemExit(f"nothing listens on {port}")


def _post(port: int, path: str, body: dict[str, object]) -> None:
    import urllib.request  # noqa: PLC0415

    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    urllib.request.urlopen(request, timeout=10).read()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--empty-server", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.empty_server is not None:
        run_empty_server(args.empty_server)
        return

    from assignsvc.store.redis_server import RedisServerProcess  # noqa: PLC0415

    data = Path(tempfile.mkdtemp(prefix="http-load-"))
    redis = RedisServerProcess(data, port=free_port(), appendonly=False)
    redis.start()
    http_port, empty_port = free_port(), free_port()
    serve = [sys.executable, "-c", "import sys; from assignsvc.cli import main; sys.exit(main())", "serve"]
    server = subprocess.Popen(
        [*serve, "--port", "0", "--http-port", str(http_port), "--redis-url", redis.url, "--log-level", "WARNING"]
    )
    empty = subprocess.Popen([sys.executable, __file__, "--empty-server", str(empty_port)])
    try:
        _wait_listening(http_port, server)
        _wait_listening(empty_port, empty)
        arms = [{"id": "a0", "weight": 0.5}, {"id": "a1", "weight": 0.5}]
        _post(http_port, "/v1/experiments", {"id": EXPERIMENT, "arms": arms, "status": "EXPERIMENT_STATUS_RUNNING"})
        asyncio.run(_drive(args, http_port, server.pid, empty_port, empty.pid))
    finally:
        for process in (server, empty):
            process.send_signal(signal.SIGTERM)
            process.wait(30)
        redis.stop()


async def _drive(args: argparse.Namespace, http_port: int, server_pid: int, empty_port: int, empty_pid: int) -> None:
    per_round = 2_000_000  # more ids than any round sends: "new" never repeats
    results: dict[str, dict[str, list[Round]]] = {case: {"assignsvc": [], "empty": []} for case in CASES}
    warmed = False
    for number in range(args.rounds):
        for case in CASES:
            kind = case.split("-")[0]
            repeat = case.endswith("repeat")
            offset = 0 if repeat else (number + 1) * per_round  # repeats: ids 0..4999, assigned before round 0
            count = 5_000 if repeat else 200_000
            for target, port, pid in (("empty", empty_port, empty_pid), ("assignsvc", http_port, server_pid)):
                requests = requests_for(f"{kind}-x", port, count, offset)
                if repeat and not warmed and target == "assignsvc":
                    await send_each_once(port, requests, args.connections)  # assign them (every route: same ids)
                    warmed = True
                results[case][target].append(await measure(port, pid, requests, args.seconds, args.connections))
    report(results)


def _summary(rounds: list[Round]) -> dict[str, float]:
    latencies = sorted(x for r in rounds for x in r.latencies)
    calls = sum(r.calls for r in rounds)
    return {
        "rps": statistics.median(r.calls / r.seconds for r in rounds),
        "p50_ms": latencies[len(latencies) // 2] * 1000 if latencies else 0.0,
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000 if latencies else 0.0,
        "cpu_us_per_call": sum(r.cpu_s for r in rounds) / calls * 1e6 if calls else 0.0,
        "errors": sum(r.errors for r in rounds),
    }


def report(results: dict[str, dict[str, list[Round]]]) -> None:
    rows = {}
    print(f"{'case':20} {'server':10} {'RPS':>8} {'p50 ms':>8} {'p99 ms':>8} {'CPU us/call':>12} {'x empty':>8}")
    for case, by_target in results.items():
        empty = _summary(by_target["empty"])
        for target in ("empty", "assignsvc"):
            s = _summary(by_target[target])
            ratio = s["rps"] / empty["rps"] if empty["rps"] else 0.0
            rows[f"{case}/{target}"] = {**s, "ratio": ratio}
            print(
                f"{case:20} {target:10} {s['rps']:8.0f} {s['p50_ms']:8.2f} {s['p99_ms']:8.2f}"
                f" {s['cpu_us_per_call']:12.1f} {ratio:8.2f}" + (f"  ({s['errors']:.0f} errors)" if s["errors"] else "")
            )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "http_load.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
