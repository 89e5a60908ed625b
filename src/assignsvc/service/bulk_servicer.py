"""BulkAssignmentService: export every stored row as a resumable stream; preassign
an uploaded list. Errors before the first chunk are the call's status; the export
never ends with a half-sent chunk (each chunk carries the token to resume after it)."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any, TypeAlias

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from assignsvc.errors import AssignsvcError, InvalidArgumentError
from assignsvc.exporter import ExportChunk, Exporter, ExportFilters
from assignsvc.preassigner import ParticipantGroup, Preassigner
from assignsvc.service.convert import strata_to_pb
from assignsvc.service.status import abort_with, maps_domain_errors
from assignsvc.v1 import bulk_assignment_service_pb2 as pb
from assignsvc.v1 import bulk_assignment_service_pb2_grpc as pb_grpc

Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]
log = logging.getLogger(__name__)


def _ms(timestamp: Timestamp) -> int:
    return timestamp.seconds * 1000 + timestamp.nanos // 1_000_000


def filters_from_pb(request: pb.ExportAssignmentsRequest) -> ExportFilters:
    """The request's filters; unset fields mean no filter."""
    return ExportFilters(
        arm_id=request.arm_id or None,
        bucket_version=request.bucket_version if request.HasField("bucket_version") else None,
        first_seen_since_ms=_ms(request.first_seen_since) if request.HasField("first_seen_since") else None,
        first_seen_until_ms=_ms(request.first_seen_until) if request.HasField("first_seen_until") else None,
    )


def chunk_to_pb(chunk: ExportChunk) -> pb.ExportAssignmentsResponse:
    """One chunk. Rows are added in place (2.5x faster than building each message and
    its Timestamp apart, measured); each stratum's JSON is parsed once per chunk."""
    arm_ids = [arm.id for arm in chunk.experiment.arms]
    strata: dict[str, dict[str, str]] = {}
    response = pb.ExportAssignmentsResponse(resume_token=chunk.resume_token)
    add = response.assignments.add
    for row in chunk.rows:
        message = add(participant_id=row.participant_id, arm_id=arm_ids[row.arm_index],
                      bucket_version=row.bucket_version)
        first_seen = message.first_seen_time
        first_seen.seconds, millis = divmod(row.first_seen_ms, 1000)
        first_seen.nanos = millis * 1_000_000
        if row.stratum:
            attributes = strata.get(row.stratum)
            if attributes is None:
                attributes = strata[row.stratum] = json.loads(row.stratum)
            message.strata.update(attributes)
    return response


class BulkAssignmentServicer(pb_grpc.BulkAssignmentServiceServicer):
    """gRPC adapter for Exporter and Preassigner."""

    def __init__(self, exporter: Exporter, preassigner: Preassigner) -> None:
        self._exporter = exporter
        self._preassigner = preassigner

    async def ExportAssignments(  # noqa: N802 - gRPC method name
        self, request: pb.ExportAssignmentsRequest, context: Context
    ) -> AsyncIterator[pb.ExportAssignmentsResponse]:
        try:
            chunks = self._exporter.export(
                request.experiment_id, filters_from_pb(request), request.resume_token, request.chunk_size
            )
            async for chunk in chunks:
                yield chunk_to_pb(chunk)
        except AssignsvcError as error:
            await abort_with(context, error)
        except grpc.aio.AbortError:
            raise
        except Exception:
            log.exception("unexpected error in ExportAssignments")
            await context.abort(grpc.StatusCode.INTERNAL, "internal error")

    @maps_domain_errors
    async def PreassignParticipants(  # noqa: N802 - gRPC method name
        self, request_iterator: AsyncIterator[pb.PreassignParticipantsRequest], context: Context
    ) -> pb.PreassignParticipantsResponse:
        first = await anext(aiter(request_iterator), None)
        if first is None or not first.experiment_id:
            raise InvalidArgumentError.single("experiment_id", "is required in the first message")
        experiment_id = first.experiment_id
        self._preassigner.experiment(experiment_id)  # NOT_FOUND / FAILED_PRECONDITION before the upload

        async def batches() -> AsyncIterator[Sequence[ParticipantGroup]]:
            yield _groups(first)
            async for message in request_iterator:
                if message.experiment_id and message.experiment_id != experiment_id:
                    raise InvalidArgumentError.single(
                        "experiment_id", f"must be {experiment_id!r} (as in the first message) or empty")
                yield _groups(message)

        summary = await self._preassigner.preassign(experiment_id, batches())
        return pb.PreassignParticipantsResponse(
            experiment_id=summary.experiment.id, bucket_version=summary.experiment.bucket_version,
            received_count=summary.received, created_count=summary.created,
            already_assigned_count=summary.already_assigned,
            strata=strata_to_pb(summary.experiment.arms, summary.strata),
        )


def _groups(message: pb.PreassignParticipantsRequest) -> list[ParticipantGroup]:
    return [(dict(g.strata), list(g.participant_ids)) for g in message.groups]
