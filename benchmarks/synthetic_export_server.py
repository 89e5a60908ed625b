"""Baseline server for the export benchmark: ExportAssignments from rows held in memory.

Same gRPC stream, chunk size and row conversion (service.bulk_servicer.chunk_to_pb) as
assignsvc; no Redis, no sorting, no tokens to sign, no pacing (nothing else runs
here). The ratio of assignsvc's export rate
to this one isolates what reading and ordering the rows from Redis costs.
Prints `serving on 127.0.0.1:PORT` like `assignsvc serve`.

    python benchmarks/synthetic_export_server.py ROWS [PORT]
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serving import serve_until_signal

from assignsvc.api.bulk_servicer import chunk_to_pb
from assignsvc.app.export import ExportChunk, ExportedRow
from assignsvc.core.model import Arm, Experiment
from assignsvc.v1 import bulk_assignment_service_pb2 as pb
from assignsvc.v1 import bulk_assignment_service_pb2_grpc as pb_grpc

EXPERIMENT = Experiment(id="bench", name="bench", arms=(Arm("a0", "a0", 0.5), Arm("a1", "a1", 0.5)))
TOKEN = "x" * 120  # about as long as a real resume token
STRATA = 8


class SyntheticExport(pb_grpc.BulkAssignmentServiceServicer):
    """Streams the same in-memory rows to every caller."""

    def __init__(self, rows: list[ExportedRow]) -> None:
        self._rows = rows

    async def ExportAssignments(  # noqa: N802 - gRPC method name
        self, request: pb.ExportAssignmentsRequest, context: Any
    ) -> AsyncIterator[pb.ExportAssignmentsResponse]:
        size = request.chunk_size or 1000
        for start in range(0, len(self._rows), size):
            yield chunk_to_pb(ExportChunk(EXPERIMENT, self._rows[start : start + size], TOKEN))


async def main(rows: int, port: int) -> None:
    now = 1_763_850_000_000
    # The rows benchmarks/bulk.py preassigns: 24-character ids, 2 arms, 8 strata.
    strata = [f'{{"segment":"{k}"}}' for k in range(STRATA)]
    data: list[ExportedRow] = [
        (f"participant-{i:012d}".encode(), (now + i) * 1024 + i % 2, 0, strata[i % STRATA]) for i in range(rows)
    ]
    server = grpc.aio.server()
    pb_grpc.add_BulkAssignmentServiceServicer_to_server(SyntheticExport(data), server)
    await serve_until_signal(server, port)


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 0))
