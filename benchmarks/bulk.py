"""Export and preassign throughput, each beside a baseline measured in the same run.

Starts a private Redis (unix socket, AOF everysec, as `make run` does), one
`assignsvc serve` process and a synthetic export server (rows in memory, same gRPC
stream, chunk size and row conversion: benchmarks/synthetic_export_server.py), then:

1. preassign: uploads N participants in 8 strata (messages built before the clock
   starts), participants stored per second;
2. export: streams the N rows from assignsvc and from the synthetic server, interleaved
   for several rounds, rows per second and their ratio (target >= 50%);
3. export under load: Assign RPS (new participants, concurrency 16, on an ONLINE
   experiment) alone, then while an export client streams without pause (target: a
   drop of <= 15%).

    python benchmarks/bulk.py [--participants 1000000] [--rounds 3] [--chunk-size 5000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parent))
from load_assign import RESULTS, create_experiment, server_process
from loadgen import run_load

from assignsvc.store.redis_server import RedisServerProcess
from assignsvc.v1 import bulk_assignment_service_pb2 as bpb
from assignsvc.v1 import bulk_assignment_service_pb2_grpc as bgrpc
from assignsvc.v1 import experiment_pb2 as epb
from assignsvc.v1 import experiment_service_pb2 as espb
from assignsvc.v1 import experiment_service_pb2_grpc as egrpc

HERE = Path(__file__).resolve().parent
STRATA = 8
PER_MESSAGE = 5000


def preassign(target: str, experiment: str, participants: int) -> float:
    """Participants stored per second for one upload of `participants` ids in 8 strata."""
    with grpc.insecure_channel(target) as channel:
        egrpc.ExperimentServiceStub(channel).CreateExperiment(
            espb.CreateExperimentRequest(
                experiment=epb.Experiment(
                    id=experiment,
                    type=epb.EXPERIMENT_TYPE_PREASSIGNED,
                    arms=[epb.Arm(id="control", weight=0.5), epb.Arm(id="treatment", weight=0.5)],
                )
            )
        )
        ids = [f"participant-{i:012d}" for i in range(participants)]  # 24 characters
        messages = []
        for start in range(0, participants, PER_MESSAGE):
            message = bpb.PreassignParticipantsRequest(experiment_id=experiment if start == 0 else "")
            for stratum in range(STRATA):
                message.groups.add(
                    strata={"segment": str(stratum)},
                    participant_ids=ids[start + stratum : start + PER_MESSAGE : STRATA],
                )
            messages.append(message)
        started = time.perf_counter()
        reply = bgrpc.BulkAssignmentServiceStub(channel).PreassignParticipants(iter(messages), timeout=600)
        elapsed = time.perf_counter() - started
    assert reply.created_count == participants, reply
    return participants / elapsed


EXPORT_METHOD = "/assignsvc.v1.BulkAssignmentService/ExportAssignments"


def raw_export(channel: grpc.Channel, experiment: str, chunk_size: int) -> Iterator[bytes]:
    """The export's messages as bytes: the client parses none of them (on 2 cores its CPU
    would otherwise come out of the server's)."""
    call = channel.unary_stream(EXPORT_METHOD, request_serializer=bpb.ExportAssignmentsRequest.SerializeToString)
    return call(bpb.ExportAssignmentsRequest(experiment_id=experiment, chunk_size=chunk_size), timeout=600)


def export_rate(target: str, experiment: str, chunk_size: int) -> tuple[float, int]:
    """(rows per second, rows) of one full export; rows = full chunks + the last one parsed."""
    with grpc.insecure_channel(target) as channel:
        started = time.perf_counter()
        messages = list(raw_export(channel, experiment, chunk_size))  # kept as bytes: ~50 MB per 1M rows
        elapsed = time.perf_counter() - started
    rows = (len(messages) - 1) * chunk_size + len(bpb.ExportAssignmentsResponse.FromString(messages[-1]).assignments)
    return rows / elapsed, rows


def export_forever(target: str, experiment: str, chunk_size: int, stop: Any, messages: Any) -> None:
    """In its own process: export again and again until stop is set, counting messages."""
    with grpc.insecure_channel(target) as channel:
        while not stop.is_set():
            stream = raw_export(channel, experiment, chunk_size)
            for _ in stream:
                messages.value += 1
                if stop.is_set():
                    stream.cancel()
                    break


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--participants", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--chunk-size", type=int, default=5000)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per Assign load measurement")
    args = parser.parse_args()

    samples: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="assignsvc-bench-") as tmp:
        redis = RedisServerProcess(Path(tmp) / "redis", unix_socket=Path(tmp) / "redis.sock")
        redis.start()
        try:
            serve = [sys.executable, "-m", "assignsvc", "serve", "--port", "0", "--redis-url", redis.url]
            synthetic = [sys.executable, str(HERE / "synthetic_export_server.py"), str(args.participants)]
            with server_process(serve) as target, server_process(synthetic) as synthetic_target:
                create_experiment(target)  # "bench": ONLINE, for the Assign load
                for round_no in range(args.rounds):
                    experiment = f"pre-{round_no}"
                    samples.setdefault("preassign participants/s", []).append(
                        preassign(target, experiment, args.participants)
                    )
                    ours, rows = export_rate(target, experiment, args.chunk_size)
                    base, base_rows = export_rate(synthetic_target, "bench", args.chunk_size)
                    assert rows == base_rows == args.participants, (rows, base_rows)
                    samples.setdefault("export rows/s", []).append(ours)
                    samples.setdefault("synthetic export rows/s", []).append(base)
                    alone = asyncio.run(
                        run_load(target, "bench", lambda i, r=round_no: f"a-{r}-{i}", 16, args.duration)
                    )
                    stop, exported = multiprocessing.Event(), multiprocessing.Value("q", 0)
                    exporter = multiprocessing.Process(
                        target=export_forever, args=(target, experiment, args.chunk_size, stop, exported)
                    )
                    exporter.start()
                    time.sleep(0.5)
                    loaded = asyncio.run(
                        run_load(target, "bench", lambda i, r=round_no: f"b-{r}-{i}", 16, args.duration)
                    )
                    stop.set()
                    exporter.join()
                    samples.setdefault("assign rps alone", []).append(alone.rps)
                    samples.setdefault("assign rps during export", []).append(loaded.rps)
                    samples.setdefault("export rows/s during assign load", []).append(
                        exported.value * args.chunk_size / (args.duration + 1.0)
                    )  # load: 0.5 s warm-up
                    print(
                        f"round {round_no + 1}: preassign {samples['preassign participants/s'][-1]:,.0f}/s, "
                        f"export {ours:,.0f} vs synthetic {base:,.0f} rows/s, assign {alone.rps:,.0f} -> "
                        f"{loaded.rps:,.0f} rps during export (errors {alone.errors + loaded.errors})",
                        file=sys.stderr,
                    )
        finally:
            redis.stop()

    median = {name: statistics.median(values) for name, values in samples.items()}
    # Ratios are taken within each round (same machine state), then their median.
    export_ratio = statistics.median(
        ours / base for ours, base in zip(samples["export rows/s"], samples["synthetic export rows/s"], strict=True)
    )
    drop = statistics.median(
        1 - loaded / alone
        for loaded, alone in zip(samples["assign rps during export"], samples["assign rps alone"], strict=True)
    )
    rows = [
        ("preassign, participants/s", median["preassign participants/s"], "target >= 100,000/s"),
        ("export, rows/s", median["export rows/s"], f"{export_ratio:.0%} of synthetic (target >= 50%)"),
        ("synthetic in-memory export, rows/s", median["synthetic export rows/s"], "baseline"),
        ("assign c=16 alone, rps", median["assign rps alone"], "baseline"),
        ("assign c=16 during an export, rps", median["assign rps during export"], f"drop {drop:.0%} (target <= 15%)"),
        ("export rows/s while assign runs", median["export rows/s during assign load"], ""),
    ]
    print(
        f"\nmedians of {args.rounds} rounds (ratios: median of the per-round ratios), "
        f"{args.participants:,} rows, chunk size {args.chunk_size}"
    )
    print(f"{'measure':<38} {'value':>12}  vs baseline")
    for name, value, note in rows:
        print(f"{name:<38} {value:>12,.0f}  {note}")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "bulk.json"
    out.write_text(
        json.dumps(
            {
                "participants": args.participants,
                "rounds": args.rounds,
                "chunk_size": args.chunk_size,
                "samples": samples,
                "medians": median,
                "export_ratio": export_ratio,
                "assign_drop_during_export": drop,
            },
            indent=2,
        )
    )
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
