"""AssignmentService: the hot path, kept to a dict lookup, a hash and one round trip.

BatchAssign and StreamAssign answer per item: an item's domain error becomes its own
google.rpc.Status (the same one Assign would have returned), never the call's; so does a
Redis failure under a FAIL_CLOSED experiment (UNAVAILABLE). Every store wait ends before
the call's deadline (context.time_remaining()): a hung Redis never hangs a call.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any, TypeAlias

import grpc

from assignsvc.api.convert import attributes_from_pb, fill_assignment
from assignsvc.api.reply_bytes import AssignmentWriter, field_one
from assignsvc.api.scope import bill_items, local_part, scoped, take_item
from assignsvc.api.status import maps_domain_errors, maps_domain_errors_in_stream, to_rpc_status
from assignsvc.app.assign import Assigner, AssignItem, AssignmentResult
from assignsvc.core.model import AssignmentReason
from assignsvc.errors import (
    AssignsvcError,
    InvalidArgumentError,
    MalformedRequestError,
    NotFoundError,
    RateLimitedError,
    StoreUnavailableError,
    UnauthenticatedError,
)
from assignsvc.v1 import assignment_service_pb2 as pb
from assignsvc.v1 import assignment_service_pb2_grpc as pb_grpc

Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]

MAX_BATCH_SIZE = 1000
# StreamAssign requests being answered at once; the stream is read no further ahead.
STREAM_WINDOW = 64


def fill_result(msg: pb.AssignResult, outcome: AssignmentResult | AssignsvcError) -> None:
    """One item's outcome, written in place: its assignment, or its error status."""
    if isinstance(outcome, AssignsvcError):
        msg.error.CopyFrom(to_rpc_status(outcome))
    else:
        fill_assignment(msg.assignment, outcome)


async def _answer(outcome: AssignsvcError) -> AssignsvcError:
    """An item answered without work (a task, so it keeps its place in the stream's order)."""
    return outcome


class AssignmentServicer(pb_grpc.AssignmentServiceServicer):
    """gRPC adapter for Assigner."""

    def __init__(self, assigner: Assigner) -> None:
        self._assigner = assigner
        self._writer = AssignmentWriter()

    def _result_bytes(
        self, outcome: AssignmentResult | AssignsvcError, local_ids: dict[str, str] | None = None
    ) -> bytes:
        """field 1 holding an item's AssignResult: a BatchAssignResponse.results entry, or a
        whole StreamAssignResponse. `local_ids`: internal -> local experiment id, if known."""
        if type(outcome) is AssignmentResult:
            internal = outcome.experiment_id
            local_id = local_ids[internal] if local_ids is not None else local_part(internal)
            return field_one(field_one(self._writer.assignment(outcome, local_id)))
        failed = pb.AssignResult()
        fill_result(failed, outcome)
        return field_one(failed.SerializeToString())

    @maps_domain_errors
    async def Assign(  # noqa: N802 - gRPC method name
        self, request: pb.AssignRequest, context: Context
    ) -> bytes:
        """The AssignResponse's bytes (api.reply_bytes; api.handlers sends bytes as they are).
        A returning participant's call without attributes is answered with the reply bytes
        kept with its sticky-cache row."""
        experiment_id = scoped(request.experiment_id)
        participant_id = request.participant_id
        if request.HasField("attributes"):
            attributes = attributes_from_pb(request.attributes)
        else:
            attributes = None
            kept = self._assigner.kept_reply(experiment_id, participant_id)
            if kept is not None:
                return kept
        result = await self._assigner.assign(experiment_id, participant_id, attributes, context.time_remaining())
        reply = field_one(self._writer.assignment(result, request.experiment_id))  # AssignResponse
        if attributes is None and result.reason is AssignmentReason.STICKY:
            self._assigner.keep_reply(result, reply)
        return reply

    @maps_domain_errors
    async def GetAssignment(  # noqa: N802 - gRPC method name
        self, request: pb.GetAssignmentRequest, context: Context
    ) -> pb.GetAssignmentResponse:
        attributes = attributes_from_pb(request.attributes) if request.HasField("attributes") else None
        result = await self._assigner.get_assignment(
            scoped(request.experiment_id), request.participant_id, attributes, context.time_remaining()
        )
        response = pb.GetAssignmentResponse()
        fill_assignment(response.assignment, result)
        return response

    @maps_domain_errors
    async def BatchAssign(  # noqa: N802 - gRPC method name
        self, request: pb.BatchAssignRequest, context: Context
    ) -> bytes:
        """Every item's answer, in order, as BatchAssignResponse bytes (api.handlers sends
        bytes as they are)."""
        count = len(request.requests)
        if not 1 <= count <= MAX_BATCH_SIZE:
            raise InvalidArgumentError.single("requests", f"must hold 1 to {MAX_BATCH_SIZE} items, got {count}")
        bill_items(count - 1)  # each item counts against the key's rate limit, as a call would
        items: list[AssignItem] = []
        bad: dict[int, AssignsvcError] = {}
        internal_ids: dict[str, str] = {}  # scoped() once per experiment named
        for i, r in enumerate(request.requests):
            attributes = None
            if r.HasField("attributes"):
                try:
                    attributes = attributes_from_pb(r.attributes, f"requests[{i}].attributes")
                except InvalidArgumentError as error:
                    bad[i] = error
            local_id = r.experiment_id
            experiment_id = internal_ids.get(local_id)
            if experiment_id is None:
                experiment_id = internal_ids[local_id] = scoped(local_id)
            items.append((experiment_id, r.participant_id, attributes))
        if bad:
            good = [item for i, item in enumerate(items) if i not in bad]
            answers = iter(await self._assigner.assign_many(good, context.time_remaining()) if good else ())
            outcomes = [bad[i] if i in bad else next(answers) for i in range(len(items))]
        else:
            outcomes = await self._assigner.assign_many(items, context.time_remaining())
        local_ids = {internal: local for local, internal in internal_ids.items()}
        return b"".join([self._result_bytes(outcome, local_ids) for outcome in outcomes])

    @maps_domain_errors_in_stream
    async def StreamAssign(  # noqa: N802 - gRPC method name
        self, request_iterator: AsyncIterator[pb.StreamAssignRequest | MalformedRequestError], context: Context
    ) -> AsyncGenerator[bytes, None]:
        """Answer in request order (StreamAssignResponse bytes) with up to STREAM_WINDOW
        requests in flight.

        The reader blocks once the window is full, so a caller that stops reading
        responses (HTTP/2 flow control stalls our writes) is not read any further.
        An item that did not decode (api.handlers puts its MalformedRequestError in its
        place) is answered with that error as its own result: the stream goes on. A
        reader that fails ends the stream with its status: the stream never hangs.
        """
        window: asyncio.Queue[asyncio.Task[AssignmentResult | AssignsvcError] | Exception | None] = asyncio.Queue(
            STREAM_WINDOW
        )

        async def read() -> None:
            first = True
            task: asyncio.Task[AssignmentResult | AssignsvcError]
            try:
                async for request in request_iterator:
                    try:  # the call was admitted for its first request; later ones count one each
                        if not first:
                            take_item()
                        if isinstance(request, MalformedRequestError):
                            task = asyncio.ensure_future(_answer(request))
                        else:
                            task = asyncio.ensure_future(self._assign_one(request, context.time_remaining()))
                    except RateLimitedError as limited:  # this item's own answer: the stream goes on
                        task = asyncio.ensure_future(_answer(limited))
                    except UnauthenticatedError as revoked:  # the key was revoked: the stream ends
                        await window.put(revoked)
                        return
                    first = False
                    await window.put(task)
            except Exception as failed:  # handed to the replying loop, which raises it
                await window.put(failed)
                return
            await window.put(None)

        reader = asyncio.create_task(read())
        try:  # any other failure ends the stream with its status (AssignsvcError): the decorator
            while (task := await window.get()) is not None:
                if isinstance(task, Exception):
                    raise task
                yield self._result_bytes(await task)
            await reader  # surfaces a failed read
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader
            while not window.empty():
                pending = window.get_nowait()
                if isinstance(pending, asyncio.Task):
                    pending.cancel()

    async def _assign_one(
        self, request: pb.StreamAssignRequest, time_remaining_s: float | None
    ) -> AssignmentResult | AssignsvcError:
        """One stream item; its own bad input, and a store outage under FAIL_CLOSED, are its own
        result (the stream goes on: a Redis blip costs the items it hit, not the stream)."""
        try:
            attributes = attributes_from_pb(request.attributes) if request.HasField("attributes") else None
            return await self._assigner.assign(
                scoped(request.experiment_id), request.participant_id, attributes, time_remaining_s
            )
        except (InvalidArgumentError, NotFoundError, StoreUnavailableError) as error:
            return error
