"""BulkAssignmentService: export every stored row as a resumable stream; preassign
an uploaded list. Errors before the first chunk are the call's status; the export
never ends with a half-sent chunk (each chunk carries the token to resume after it)."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from typing import Any, TypeAlias

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from assignsvc.api.convert import strata_to_pb
from assignsvc.api.scope import ensure_live, local_part, scoped
from assignsvc.api.status import maps_domain_errors, maps_domain_errors_in_stream
from assignsvc.app.export import ExportChunk, ExportedRow, Exporter, ExportFilters
from assignsvc.app.pacing import SLICE_ROWS, Pacer
from assignsvc.app.preassign import ParticipantGroup, Preassigner
from assignsvc.errors import InvalidArgumentError
from assignsvc.store.claims import unpack_row
from assignsvc.v1 import bulk_assignment_service_pb2 as pb
from assignsvc.v1 import bulk_assignment_service_pb2_grpc as pb_grpc

Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]


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


def add_rows(
    response: pb.ExportAssignmentsResponse,
    arm_ids: list[str],
    rows: Sequence[ExportedRow],
    strata: dict[str, pb.ExportedAssignment],
) -> None:
    """Append rows to a chunk in place (2.5x faster than building each message and its
    Timestamp apart, measured); strata caches a message holding each stratum's map."""
    add = response.assignments.add
    for participant, packed, version, stratum in rows:
        first_seen_ms, arm = unpack_row(packed)
        message = add(participant_id=participant, arm_id=arm_ids[arm], bucket_version=version)
        if stratum:
            template = strata.get(stratum)
            if template is None:
                template = strata[stratum] = pb.ExportedAssignment(strata=json.loads(stratum))
            message.MergeFrom(template)  # in C; a map from a dict goes through Python's Mapping.update
        first_seen = message.first_seen_time
        first_seen.seconds, millis = divmod(first_seen_ms, 1000)
        first_seen.nanos = millis * 1_000_000


def chunk_to_pb(chunk: ExportChunk) -> pb.ExportAssignmentsResponse:
    """One chunk as one message."""
    response = pb.ExportAssignmentsResponse(resume_token=chunk.resume_token)
    add_rows(response, [arm.id for arm in chunk.experiment.arms], chunk.rows, {})
    return response


async def paced_chunk_to_pb(chunk: ExportChunk, pacer: Pacer) -> pb.ExportAssignmentsResponse:
    """chunk_to_pb in slices of SLICE_ROWS rows, with a pacer checkpoint between slices."""
    response = pb.ExportAssignmentsResponse(resume_token=chunk.resume_token)
    arm_ids = [arm.id for arm in chunk.experiment.arms]
    strata: dict[str, pb.ExportedAssignment] = {}
    for start in range(0, len(chunk.rows), SLICE_ROWS):
        add_rows(response, arm_ids, chunk.rows[start : start + SLICE_ROWS], strata)
        await pacer.checkpoint()
    return response


class BulkAssignmentServicer(pb_grpc.BulkAssignmentServiceServicer):
    """gRPC adapter for Exporter and Preassigner."""

    def __init__(
        self,
        exporter: Exporter,
        preassigner: Preassigner,
        activity: Callable[[], int] = lambda: 0,
        bulk_share: float = 0.1,
    ) -> None:
        self._exporter = exporter
        self._preassigner = preassigner
        self._activity = activity  # Assign calls served so far: bulk work yields while it moves
        self._bulk_share = bulk_share  # of the event loop, per stream, while Assign is being served

    @maps_domain_errors_in_stream
    async def ExportAssignments(  # noqa: N802 - gRPC method name
        self, request: pb.ExportAssignmentsRequest, context: Context
    ) -> AsyncGenerator[pb.ExportAssignmentsResponse, None]:
        pacer = Pacer(self._bulk_share, self._activity)
        chunks = self._exporter.export(
            scoped(request.experiment_id), filters_from_pb(request), request.resume_token, request.chunk_size, pacer
        )
        async for chunk in chunks:
            ensure_live()  # a key revoked mid-export stops it at the next chunk
            yield await paced_chunk_to_pb(chunk, pacer)

    @maps_domain_errors
    async def PreassignParticipants(  # noqa: N802 - gRPC method name
        self, request_iterator: AsyncIterator[pb.PreassignParticipantsRequest], context: Context
    ) -> pb.PreassignParticipantsResponse:
        first = await anext(aiter(request_iterator), None)
        if first is None or not first.experiment_id:
            raise InvalidArgumentError.single("experiment_id", "is required in the first message")
        experiment_id = scoped(first.experiment_id)
        self._preassigner.experiment(experiment_id)  # NOT_FOUND / FAILED_PRECONDITION before the upload

        async def batches() -> AsyncIterator[Sequence[ParticipantGroup]]:
            yield _groups(first)
            async for message in request_iterator:
                ensure_live()
                if message.experiment_id and message.experiment_id != first.experiment_id:
                    raise InvalidArgumentError.single(
                        "experiment_id", f"must be {first.experiment_id!r} (as in the first message) or empty"
                    )
                yield _groups(message)

        summary = await self._preassigner.preassign(experiment_id, batches())
        return pb.PreassignParticipantsResponse(
            experiment_id=local_part(summary.experiment.id),
            bucket_version=summary.experiment.bucket_version,
            received_count=summary.received,
            created_count=summary.created,
            already_assigned_count=summary.already_assigned,
            strata=strata_to_pb(summary.experiment.arms, summary.strata),
        )


def _groups(message: pb.PreassignParticipantsRequest) -> list[ParticipantGroup]:
    return [(dict(g.strata), list(g.participant_ids)) for g in message.groups]
