"""AssignmentService: the hot path, kept to a dict lookup, a hash and one round trip."""

from __future__ import annotations

from typing import Any, TypeAlias

import grpc

from assignsvc.assigner import Assigner
from assignsvc.service.convert import assignment_to_pb
from assignsvc.service.status import maps_domain_errors
from assignsvc.v1 import assignment_service_pb2 as pb
from assignsvc.v1 import assignment_service_pb2_grpc as pb_grpc

Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]


class AssignmentServicer(pb_grpc.AssignmentServiceServicer):
    """gRPC adapter for Assigner."""

    def __init__(self, assigner: Assigner) -> None:
        self._assigner = assigner

    @maps_domain_errors
    async def Assign(  # noqa: N802 - gRPC method name
        self, request: pb.AssignRequest, context: Context
    ) -> pb.AssignResponse:
        result = await self._assigner.assign(request.experiment_id, request.participant_id)
        return pb.AssignResponse(assignment=assignment_to_pb(result))

    @maps_domain_errors
    async def GetAssignment(  # noqa: N802 - gRPC method name
        self, request: pb.GetAssignmentRequest, context: Context
    ) -> pb.GetAssignmentResponse:
        result = await self._assigner.get_assignment(request.experiment_id, request.participant_id)
        return pb.GetAssignmentResponse(assignment=assignment_to_pb(result))
