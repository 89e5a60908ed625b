"""WebhookService: validate -> convert -> call the webhook manager -> convert."""

from __future__ import annotations

from typing import Any, TypeAlias

import grpc

from assignsvc.api.convert import duration_ms
from assignsvc.api.scope import caller_datasource, scoped
from assignsvc.api.status import maps_domain_errors
from assignsvc.api.webhook_convert import delivery_to_pb, webhook_from_pb, webhook_to_pb
from assignsvc.app.webhooks import WebhookManager
from assignsvc.errors import InvalidArgumentError
from assignsvc.v1 import webhook_service_pb2 as pb
from assignsvc.v1 import webhook_service_pb2_grpc as pb_grpc

Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]


class WebhookServicer(pb_grpc.WebhookServiceServicer):
    """gRPC adapter for WebhookManager."""

    def __init__(self, manager: WebhookManager) -> None:
        self._manager = manager

    @maps_domain_errors
    async def CreateWebhook(  # noqa: N802 - gRPC method name
        self, request: pb.CreateWebhookRequest, context: Context
    ) -> pb.CreateWebhookResponse:
        if not request.HasField("webhook"):
            raise InvalidArgumentError.single("webhook", "is required")
        created = await self._manager.create(webhook_from_pb(request.webhook), caller_datasource())
        return pb.CreateWebhookResponse(webhook=webhook_to_pb(created, with_secret=True))

    @maps_domain_errors
    async def GetWebhook(  # noqa: N802 - gRPC method name
        self, request: pb.GetWebhookRequest, context: Context
    ) -> pb.GetWebhookResponse:
        return pb.GetWebhookResponse(webhook=webhook_to_pb(await self._manager.get(scoped(request.webhook_id))))

    @maps_domain_errors
    async def ListWebhooks(  # noqa: N802 - gRPC method name
        self, request: pb.ListWebhooksRequest, context: Context
    ) -> pb.ListWebhooksResponse:
        page, token = await self._manager.list(request.page_size, request.page_token, caller_datasource())
        return pb.ListWebhooksResponse(webhooks=[webhook_to_pb(w) for w in page], next_page_token=token)

    @maps_domain_errors
    async def UpdateWebhook(  # noqa: N802 - gRPC method name
        self, request: pb.UpdateWebhookRequest, context: Context
    ) -> pb.UpdateWebhookResponse:
        if not request.HasField("webhook"):
            raise InvalidArgumentError.single("webhook", "is required")
        updated = await self._manager.update(webhook_from_pb(request.webhook), list(request.update_mask.paths))
        return pb.UpdateWebhookResponse(webhook=webhook_to_pb(updated))

    @maps_domain_errors
    async def DeleteWebhook(  # noqa: N802 - gRPC method name
        self, request: pb.DeleteWebhookRequest, context: Context
    ) -> pb.DeleteWebhookResponse:
        await self._manager.delete(scoped(request.webhook_id))
        return pb.DeleteWebhookResponse()

    @maps_domain_errors
    async def RotateWebhookSecret(  # noqa: N802 - gRPC method name
        self, request: pb.RotateWebhookSecretRequest, context: Context
    ) -> pb.RotateWebhookSecretResponse:
        grace = duration_ms(request.grace_period, "grace_period") / 1000 if request.HasField("grace_period") else None
        rotated = await self._manager.rotate_secret(scoped(request.webhook_id), grace)
        return pb.RotateWebhookSecretResponse(webhook=webhook_to_pb(rotated, with_secret=True))

    @maps_domain_errors
    async def SendTestEvent(  # noqa: N802 - gRPC method name
        self, request: pb.SendTestEventRequest, context: Context
    ) -> pb.SendTestEventResponse:
        return pb.SendTestEventResponse(event_id=await self._manager.send_test(scoped(request.webhook_id)))

    @maps_domain_errors
    async def ListDeliveries(  # noqa: N802 - gRPC method name
        self, request: pb.ListDeliveriesRequest, context: Context
    ) -> pb.ListDeliveriesResponse:
        page, token = await self._manager.deliveries(scoped(request.webhook_id), request.page_size, request.page_token)
        return pb.ListDeliveriesResponse(deliveries=[delivery_to_pb(d) for d in page], next_page_token=token)
