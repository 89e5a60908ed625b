"""SavedGroupService: validate -> convert -> call the saved group catalog -> convert."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any, TypeAlias

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from assignsvc.api.scope import caller_datasource, ensure_live, local_part, scoped
from assignsvc.api.status import maps_domain_errors
from assignsvc.app.saved_groups import SavedGroupCatalog, format_group_etag
from assignsvc.core.saved_groups import SavedGroup
from assignsvc.errors import InvalidArgumentError
from assignsvc.v1 import saved_group_service_pb2 as pb
from assignsvc.v1 import saved_group_service_pb2_grpc as pb_grpc

Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]


def _timestamp(ms: int) -> Timestamp:
    seconds, millis = divmod(ms, 1000)
    return Timestamp(seconds=seconds, nanos=millis * 1_000_000)


def group_to_pb(group: SavedGroup) -> pb.SavedGroup:
    """The API's view of a stored group."""
    return pb.SavedGroup(
        id=local_part(group.id),
        name=group.name,
        size=group.size,
        create_time=_timestamp(group.create_time_ms),
        update_time=_timestamp(group.update_time_ms),
        etag=format_group_etag(group),
    )


class SavedGroupServicer(pb_grpc.SavedGroupServiceServicer):
    """gRPC adapter for SavedGroupCatalog."""

    def __init__(self, catalog: SavedGroupCatalog) -> None:
        self._catalog = catalog

    @maps_domain_errors
    async def CreateSavedGroup(  # noqa: N802 - gRPC method name
        self, request: pb.CreateSavedGroupRequest, context: Context
    ) -> pb.CreateSavedGroupResponse:
        if not request.HasField("saved_group"):
            raise InvalidArgumentError.single("saved_group", "is required")
        group = SavedGroup(id=scoped(request.saved_group.id), name=request.saved_group.name)
        created = await self._catalog.create(group, list(request.ids))
        return pb.CreateSavedGroupResponse(saved_group=group_to_pb(created))

    @maps_domain_errors
    async def GetSavedGroup(  # noqa: N802 - gRPC method name
        self, request: pb.GetSavedGroupRequest, context: Context
    ) -> pb.GetSavedGroupResponse:
        return pb.GetSavedGroupResponse(saved_group=group_to_pb(self._catalog.get(scoped(request.saved_group_id))))

    @maps_domain_errors
    async def ListSavedGroups(  # noqa: N802 - gRPC method name
        self, request: pb.ListSavedGroupsRequest, context: Context
    ) -> pb.ListSavedGroupsResponse:
        page, token = self._catalog.list(request.page_size, request.page_token, caller_datasource())
        return pb.ListSavedGroupsResponse(saved_groups=[group_to_pb(g) for g in page], next_page_token=token)

    @maps_domain_errors
    async def UpdateSavedGroup(  # noqa: N802 - gRPC method name
        self, request: pb.UpdateSavedGroupRequest, context: Context
    ) -> pb.UpdateSavedGroupResponse:
        name = request.name if request.HasField("name") else None
        updated = await self._catalog.update(
            scoped(request.saved_group_id), request.etag, name, list(request.add_ids), list(request.remove_ids)
        )
        return pb.UpdateSavedGroupResponse(saved_group=group_to_pb(updated))

    @maps_domain_errors  # stream-unary: one awaited answer, so the unary wrapper fits
    async def UploadSavedGroupIds(  # noqa: N802 - gRPC method name
        self, request_iterator: AsyncIterator[pb.UploadSavedGroupIdsRequest], context: Context
    ) -> pb.UploadSavedGroupIdsResponse:
        """The first message names the group, mode and etag; every message may carry ids."""
        first = await anext(aiter(request_iterator), None)
        if first is None or not first.saved_group_id:
            raise InvalidArgumentError.single("saved_group_id", "is required in the first message")

        async def chunks() -> AsyncIterator[Sequence[str]]:
            yield list(first.ids)
            async for message in request_iterator:
                ensure_live()  # a key revoked mid-upload stores nothing
                yield list(message.ids)

        replace = first.mode != pb.UPLOAD_MODE_ADD
        group, received = await self._catalog.upload(scoped(first.saved_group_id), first.etag, replace, chunks())
        return pb.UploadSavedGroupIdsResponse(saved_group=group_to_pb(group), received_ids=received)

    @maps_domain_errors
    async def DeleteSavedGroup(  # noqa: N802 - gRPC method name
        self, request: pb.DeleteSavedGroupRequest, context: Context
    ) -> pb.DeleteSavedGroupResponse:
        await self._catalog.delete(scoped(request.saved_group_id), request.etag)
        return pb.DeleteSavedGroupResponse()
