"""proto <-> model for webhooks and deliveries (service.convert holds the experiment ones)."""

from __future__ import annotations

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from assignsvc.api.scope import local_part, scoped
from assignsvc.core.events import DEFAULT_FORMAT, Webhook
from assignsvc.store.outbox import DeliveryRecord
from assignsvc.v1 import webhook_service_pb2 as wpb

_STATES = {
    "pending": wpb.DELIVERY_STATE_PENDING,
    "succeeded": wpb.DELIVERY_STATE_SUCCEEDED,
    "failed": wpb.DELIVERY_STATE_FAILED,
    "dropped": wpb.DELIVERY_STATE_DROPPED,
}


def _ts(ms: int) -> Timestamp:
    ts = Timestamp()
    ts.FromMilliseconds(ms)
    return ts


def webhook_from_pb(msg: wpb.Webhook) -> Webhook:
    """The user-settable fields of a request's webhook."""
    return Webhook(
        id=scoped(msg.id),
        url=msg.url,
        events=tuple(msg.events),
        enabled=msg.enabled,
        description=msg.description,
        token=msg.token,
        sign_body=msg.sign_body,
        format=msg.format or DEFAULT_FORMAT,
    )


def webhook_to_pb(webhook: Webhook, *, with_secret: bool = False) -> wpb.Webhook:
    """The API's view: never the token, the secret only when asked (create, rotate)."""
    msg = wpb.Webhook(
        id=local_part(webhook.id),
        url=webhook.url,
        events=list(webhook.events),
        enabled=webhook.enabled,
        description=webhook.description,
        has_token=bool(webhook.token),
        sign_body=webhook.sign_body,
        format=webhook.format,
        disabled_reason=webhook.disabled_reason,
        failed_events=webhook.failed_events,
        create_time=_ts(webhook.create_time_ms),
        update_time=_ts(webhook.update_time_ms),
    )
    if with_secret and webhook.secrets:
        msg.secret = webhook.secrets[0].value
    expiring = [s.expires_ms for s in webhook.secrets[1:] if s.expires_ms is not None]
    if expiring:
        msg.previous_secret_expire_time.CopyFrom(_ts(max(expiring)))
    return msg


def delivery_to_pb(record: DeliveryRecord) -> wpb.Delivery:
    """One delivery with its attempts."""
    msg = wpb.Delivery(
        id=record.id,
        event_id=record.event_id,
        event_type=record.event_type,
        state=_STATES.get(record.state, wpb.DELIVERY_STATE_UNSPECIFIED),
        attempt_count=record.attempt,
        create_time=_ts(record.created_ms),
        payload=record.payload,
    )
    if record.state == "pending" and record.next_ms is not None:
        msg.next_attempt_time.CopyFrom(_ts(record.next_ms))
    for a in record.attempts:
        latency = Duration()
        latency.FromMilliseconds(int(a.get("latency_ms", 0)))
        msg.attempts.append(
            wpb.DeliveryAttempt(
                attempt=int(a.get("attempt", 0)),
                time=_ts(int(a.get("time_ms", 0))),
                response_status=int(a.get("status", 0)),
                latency=latency,
                error=str(a.get("error", "")),
            )
        )
    return msg
