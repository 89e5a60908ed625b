"""ExperimentService: validate -> convert -> call the catalog -> convert."""

from __future__ import annotations

from typing import Any, TypeAlias

import grpc

from assignsvc.api.convert import (
    apply_outcome_to_pb,
    experiment_from_pb,
    experiment_to_pb,
    stats_to_pb,
    status_from_pb,
)
from assignsvc.api.scope import caller_datasource, scoped
from assignsvc.api.status import maps_domain_errors
from assignsvc.app.apply import Desired, ExperimentApplier
from assignsvc.app.catalog import ExperimentCatalog
from assignsvc.core.lifecycle import Action
from assignsvc.errors import InvalidArgumentError
from assignsvc.v1 import experiment_pb2 as epb
from assignsvc.v1 import experiment_service_pb2 as pb
from assignsvc.v1 import experiment_service_pb2_grpc as pb_grpc

Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]
StatusRequest: TypeAlias = pb.StartExperimentRequest | pb.PauseExperimentRequest | pb.ResumeExperimentRequest


class ExperimentServicer(pb_grpc.ExperimentServiceServicer):
    """gRPC adapter for ExperimentCatalog."""

    def __init__(self, catalog: ExperimentCatalog, applier: ExperimentApplier) -> None:
        self._catalog = catalog
        self._applier = applier

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
        experiment = self._catalog.get(scoped(request.experiment_id))
        return pb.GetExperimentResponse(experiment=experiment_to_pb(experiment))

    @maps_domain_errors
    async def ListExperiments(  # noqa: N802 - gRPC method name
        self, request: pb.ListExperimentsRequest, context: Context
    ) -> pb.ListExperimentsResponse:
        page, next_token = self._catalog.list(request.page_size, request.page_token, caller_datasource())
        return pb.ListExperimentsResponse(experiments=[experiment_to_pb(e) for e in page], next_page_token=next_token)

    @maps_domain_errors
    async def UpdateExperiment(  # noqa: N802 - gRPC method name
        self, request: pb.UpdateExperimentRequest, context: Context
    ) -> pb.UpdateExperimentResponse:
        if not request.HasField("experiment"):
            raise InvalidArgumentError.single("experiment", "is required")
        patch = experiment_from_pb(request.experiment)
        paths = list(request.update_mask.paths)
        updated = await self._catalog.update(patch, paths, request.experiment.etag)
        return pb.UpdateExperimentResponse(experiment=experiment_to_pb(updated))

    @maps_domain_errors
    async def DeleteExperiment(  # noqa: N802 - gRPC method name
        self, request: pb.DeleteExperimentRequest, context: Context
    ) -> pb.DeleteExperimentResponse:
        await self._catalog.delete(scoped(request.experiment_id), request.etag)
        return pb.DeleteExperimentResponse()

    async def _change_status(self, request: StatusRequest, action: Action) -> epb.Experiment:
        changed = await self._catalog.change_status(scoped(request.experiment_id), action, request.etag)
        return experiment_to_pb(changed)

    @maps_domain_errors
    async def StartExperiment(  # noqa: N802 - gRPC method name
        self, request: pb.StartExperimentRequest, context: Context
    ) -> pb.StartExperimentResponse:
        return pb.StartExperimentResponse(experiment=await self._change_status(request, Action.START))

    @maps_domain_errors
    async def PauseExperiment(  # noqa: N802 - gRPC method name
        self, request: pb.PauseExperimentRequest, context: Context
    ) -> pb.PauseExperimentResponse:
        return pb.PauseExperimentResponse(experiment=await self._change_status(request, Action.PAUSE))

    @maps_domain_errors
    async def ResumeExperiment(  # noqa: N802 - gRPC method name
        self, request: pb.ResumeExperimentRequest, context: Context
    ) -> pb.ResumeExperimentResponse:
        return pb.ResumeExperimentResponse(experiment=await self._change_status(request, Action.RESUME))

    @maps_domain_errors
    async def StopExperiment(  # noqa: N802 - gRPC method name
        self, request: pb.StopExperimentRequest, context: Context
    ) -> pb.StopExperimentResponse:
        stopped = await self._catalog.stop(scoped(request.experiment_id), request.etag, request.released_arm_id)
        return pb.StopExperimentResponse(experiment=experiment_to_pb(stopped))

    @maps_domain_errors
    async def RerandomizeExperiment(  # noqa: N802 - gRPC method name
        self, request: pb.RerandomizeExperimentRequest, context: Context
    ) -> pb.RerandomizeExperimentResponse:
        changed = await self._catalog.rerandomize(
            scoped(request.experiment_id),
            request.etag,
            request.seed,
            block_previous=request.block_previous_participants,
        )
        return pb.RerandomizeExperimentResponse(experiment=experiment_to_pb(changed))

    @maps_domain_errors
    async def GetExperimentStats(  # noqa: N802 - gRPC method name
        self, request: pb.GetExperimentStatsRequest, context: Context
    ) -> pb.GetExperimentStatsResponse:
        version = request.bucket_version if request.HasField("bucket_version") else None
        return stats_to_pb(await self._catalog.stats(scoped(request.experiment_id), version))

    @maps_domain_errors
    async def ApplyExperiments(  # noqa: N802 - gRPC method name
        self, request: pb.ApplyExperimentsRequest, context: Context
    ) -> pb.ApplyExperimentsResponse:
        desired = [
            Desired(
                experiment_from_pb(msg, f"experiments[{i}]"),
                status_from_pb(msg.status, f"experiments[{i}].status"),
            )
            for i, msg in enumerate(request.experiments)
        ]
        outcomes = await self._applier.apply(desired, dry_run=request.dry_run)
        return pb.ApplyExperimentsResponse(results=[apply_outcome_to_pb(o) for o in outcomes])
