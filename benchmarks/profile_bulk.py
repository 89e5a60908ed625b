"""Where a preassign upload and an export spend the server's time: the server runs
in this process under cProfile, the client in a thread (raw bytes, nothing parsed).

    python benchmarks/profile_bulk.py [ROWS]
"""

from __future__ import annotations

import asyncio
import cProfile
import pstats
import sys
import tempfile
import time
from pathlib import Path

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bulk import STRATA, raw_export

from assignsvc.config import ServerConfig
from assignsvc.server.wiring import create_server
from assignsvc.store.redis_server import RedisServerProcess
from assignsvc.v1 import bulk_assignment_service_pb2 as bpb
from assignsvc.v1 import bulk_assignment_service_pb2_grpc as bgrpc
from assignsvc.v1 import experiment_pb2 as epb
from assignsvc.v1 import experiment_service_pb2 as espb
from assignsvc.v1 import experiment_service_pb2_grpc as egrpc


def client(target: str, rows: int) -> None:
    with grpc.insecure_channel(target) as channel:
        arms = [epb.Arm(id="a", weight=0.5), epb.Arm(id="b", weight=0.5)]
        egrpc.ExperimentServiceStub(channel).CreateExperiment(
            espb.CreateExperimentRequest(
                experiment=epb.Experiment(id="p", type=epb.EXPERIMENT_TYPE_PREASSIGNED, arms=arms)
            )
        )
        ids = [f"participant-{i:012d}" for i in range(rows)]
        messages = [
            bpb.PreassignParticipantsRequest(
                experiment_id="p" if start == 0 else "",
                groups=[
                    bpb.ParticipantGroup(
                        strata={"segment": str(s)}, participant_ids=ids[start + s : start + 5000 : STRATA]
                    )
                    for s in range(STRATA)
                ],
            )
            for start in range(0, rows, 5000)
        ]
        started = time.perf_counter()
        bgrpc.BulkAssignmentServiceStub(channel).PreassignParticipants(iter(messages), timeout=600)
        print(f"preassign {rows / (time.perf_counter() - started):,.0f}/s", file=sys.stderr)
        started = time.perf_counter()
        chunks = sum(1 for _ in raw_export(channel, "p", 5000))
        print(f"export {chunks * 5000 / (time.perf_counter() - started):,.0f} rows/s", file=sys.stderr)


async def main(rows: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        redis = RedisServerProcess(Path(tmp) / "redis", unix_socket=Path(tmp) / "redis.sock")
        redis.start()
        try:
            running = await create_server(ServerConfig(port=0, redis_url=redis.url, data_dir=Path(tmp) / "data"))
            profile = cProfile.Profile()
            profile.enable()
            await asyncio.get_running_loop().run_in_executor(None, client, f"127.0.0.1:{running.port}", rows)
            profile.disable()
            await running.stop()
        finally:
            redis.stop()
    pstats.Stats(profile).sort_stats("tottime").print_stats(30)


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 500_000))
