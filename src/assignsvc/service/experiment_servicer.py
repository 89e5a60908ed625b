"""ExperimentService: validate -> convert -> call the catalog -> convert."""

from __future__ import annotations

from typing import Any, TypeAlias

import grpc

from assignsvc.catalog import ExperimentCatalog
from assignsvc.errors import InvalidArgumentError
from assignsvc.service.convert import experiment_from_pb, experiment_to_pb
from assignsvc.service.status import maps_domain_errors
from assignsvc.v1 import experiment_service_pb2 as pb
from assignsvc.v1 import experiment_service_pb2_grpc as pb_grpc

Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]


class ExperimentServicer(pb_grpc.ExperimentServiceServicer):
    """gRPC adapter for ExperimentCatalog."""

    def __init__(self, catalog: ExperimentCatalog) -> None:
        self._catalog = catalog

    @maps_domain_errors
    async def CreateExperiment(  # noqa: N802 - gRPC method name
        self, request: pb.CreateExperimentRequest, context: Context
    ) -> pb.CreateExperimentResponse:
        if not request.HasField("experiment"):
            raise InvalidArgumentError.single("experiment", "is required")
        created = await self._catalog.create(experiment_from_pb(request.experiment))
        return pb.CreateExperimentResponse(experiment=experiment_to_pb(created))

    @maps_domain_errors
    async def GetExperiment(  # noqa: N802 - gRPC method name
        self, request: pb.GetExperimentRequest, context: Context
    ) -> pb.GetExperimentResponse:
        experiment = self._catalog.get(request.experiment_id)
        return pb.GetExperimentResponse(experiment=experiment_to_pb(experiment))

    @maps_domain_errors
    async def ListExperiments(  # noqa: N802 - gRPC method name
        self, request: pb.ListExperimentsRequest, context: Context
    ) -> pb.ListExperimentsResponse:
        page, next_token = self._catalog.list(request.page_size, request.page_token)
        return pb.ListExperimentsResponse(
            experiments=[experiment_to_pb(e) for e in page], next_page_token=next_token
        )
