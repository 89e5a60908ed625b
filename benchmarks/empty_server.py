"""Baseline server: the Assign method with an empty handler, nothing else.

Same grpc.aio settings and messages as assignsvc, so the ratio Assign RPS / empty RPS
isolates what assignsvc itself costs per call (bucketing, Redis, conversion).
Prints `serving on 127.0.0.1:PORT` like `assignsvc serve`. With `--interceptor` a
pass-through server interceptor is added: what grpc.aio's interceptor machinery alone
costs per call (light_load.py's `empty+icpt` scenario). With `--suspend` the handler
awaits once (asyncio.sleep(0)) before answering, as a handler waiting for Redis does:
what grpc.aio costs a call whose handler does not finish in its first step.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serving import serve_until_signal

from assignsvc.v1 import assignment_service_pb2 as apb

RESPONSE = apb.AssignResponse(
    assignment=apb.Assignment(
        experiment_id="bench",
        participant_id="p",
        in_experiment=True,
        arm=apb.AssignedArm(id="a0", name="a0", index=0),
        reason=apb.ASSIGNMENT_REASON_STICKY,
    )
)


async def empty_assign(request: apb.AssignRequest, context: Any) -> apb.AssignResponse:
    """Return a constant response: the cheapest possible Assign."""
    return RESPONSE


async def suspended_assign(request: apb.AssignRequest, context: Any) -> apb.AssignResponse:
    """The constant response after one suspension of the handler."""
    await asyncio.sleep(0)
    return RESPONSE


class PassThrough(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Does nothing: grpc.aio's per-call interceptor path, and nothing else."""

    async def intercept_service(self, continuation: Any, details: grpc.HandlerCallDetails) -> Any:
        return await continuation(details)


async def main(port: int, interceptor: bool, suspend: bool) -> None:
    server = grpc.aio.server(interceptors=[PassThrough()] if interceptor else None)
    handler = grpc.method_handlers_generic_handler(
        "assignsvc.v1.AssignmentService",
        {
            "Assign": grpc.unary_unary_rpc_method_handler(
                suspended_assign if suspend else empty_assign,
                request_deserializer=apb.AssignRequest.FromString,
                response_serializer=apb.AssignResponse.SerializeToString,
            )
        },
    )
    server.add_generic_rpc_handlers((handler,))
    await serve_until_signal(server, port)


if __name__ == "__main__":
    ports = [a for a in sys.argv[1:] if a.isdigit()]
    asyncio.run(main(int(ports[0]) if ports else 0, "--interceptor" in sys.argv, "--suspend" in sys.argv))
