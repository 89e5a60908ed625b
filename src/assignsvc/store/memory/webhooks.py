"""Webhook definitions and the outbox in memory (see store.webhooks and store.outbox).

The definitions keep what users set apart from what delivery changes, as the Redis
hash does, so that a conditional save compares configs exactly as Redis compares them.
Deliveries are due by time and leased by token, on the state's clock; the log is ordered
by delivery id (Redis' sorted set of equal scores). Each method runs without an await.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from assignsvc.core.events import Webhook, webhook_from_dict, webhook_to_dict
from assignsvc.store.memory.shared import SharedState
from assignsvc.store.outbox import LOG_LIMIT, TRIM_PER_WRITE, ClaimedDelivery, DeliveryRecord, NewDelivery, StreamEvent

LOST_ATTEMPT = "no result: the worker making this attempt was lost"


@dataclass(slots=True)
class _Hook:
    config: str  # canonical JSON of what users set (no delivery state)
    enabled: bool
    disabled_reason: str = ""
    failed_events: int = 0


@dataclass(slots=True)
class _Delivery:
    new: NewDelivery
    created_ms: int
    state: str = "pending"
    attempt: int = 0
    next_ms: int | None = None
    lease: str = ""
    attempts: list[dict[str, Any]] = field(default_factory=list)


def _config(webhook: Webhook) -> str:
    raw = webhook_to_dict(webhook)
    for name in ("enabled", "disabled_reason", "failed_events"):
        raw.pop(name)
    return json.dumps(raw, sort_keys=True)


@dataclass(slots=True)
class WebhookTables:
    """Webhooks, deliveries, the due times and the logs: shared by the webhook store and the outbox."""

    hooks: dict[str, _Hook] = field(default_factory=dict)
    deliveries: dict[str, _Delivery] = field(default_factory=dict)
    due: dict[str, int] = field(default_factory=dict)  # pending delivery id -> when it may be tried
    logs: dict[str, set[str]] = field(default_factory=dict)  # webhook id -> its delivery ids
    markers: dict[str, int | None] = field(default_factory=dict)  # SET NX markers -> expiry ms


class MemoryWebhookStore:
    """WebhookStore in memory."""

    def __init__(self, tables: WebhookTables, state: SharedState) -> None:
        self._tables = tables
        self._state = state

    async def create(self, webhook: Webhook) -> bool:
        """See WebhookStore.create."""
        self._state.check("create webhook")
        if webhook.id in self._tables.hooks:
            return False
        self._tables.hooks[webhook.id] = _Hook(_config(webhook), webhook.enabled)
        return True

    async def save(self, webhook: Webhook, *, set_enabled: bool, read: Webhook | None = None) -> bool | None:
        """See WebhookStore.save."""
        self._state.check("save webhook")
        hook = self._tables.hooks.get(webhook.id)
        if hook is None:
            return False
        if read is not None and hook.config != _config(read):
            return None
        hook.config = _config(webhook)
        if set_enabled and webhook.enabled:
            hook.enabled, hook.disabled_reason, hook.failed_events = True, "", 0
        elif set_enabled:
            hook.enabled, hook.disabled_reason = False, webhook.disabled_reason
        return True

    async def get(self, webhook_id: str) -> Webhook | None:
        """See WebhookStore.get."""
        self._state.check("get webhook")
        hook = self._tables.hooks.get(webhook_id)
        return None if hook is None else _webhook(hook)

    async def all(self) -> list[Webhook]:
        """See WebhookStore.all."""
        self._state.check("list webhooks")
        return [_webhook(self._tables.hooks[i]) for i in sorted(self._tables.hooks)]

    async def delete(self, webhook_id: str) -> bool:
        """See WebhookStore.delete."""
        self._state.check("delete webhook")
        tables = self._tables
        if tables.hooks.pop(webhook_id, None) is None:
            return False
        for delivery_id in tables.logs.pop(webhook_id, set()):
            tables.deliveries.pop(delivery_id, None)
            tables.due.pop(delivery_id, None)
        return True


def _webhook(hook: _Hook) -> Webhook:
    raw = json.loads(hook.config)
    raw.update(enabled=hook.enabled, disabled_reason=hook.disabled_reason, failed_events=hook.failed_events)
    return webhook_from_dict(raw)


class MemoryOutbox:
    """Outbox in memory, over the shared events stream and the webhook tables."""

    def __init__(self, tables: WebhookTables, state: SharedState) -> None:
        self._tables = tables
        self._state = state

    async def ensure_group(self) -> None:
        """See Outbox.ensure_group."""
        self._state.check("create the webhook consumer group")
        self._state.events.group = True

    async def read_events(self, consumer: str, count: int) -> list[StreamEvent]:
        """See Outbox.read_events."""
        self._state.check("read webhook events")
        return self._state.events.give(consumer, count)

    async def take_over(self, consumer: str, min_idle_ms: int, count: int) -> list[StreamEvent]:
        """See Outbox.take_over."""
        self._state.check("take over webhook events")
        return self._state.events.take_over(consumer, min_idle_ms, count)

    async def fan_out(self, event: StreamEvent, deliveries: Sequence[NewDelivery], now_ms: int) -> None:
        """See Outbox.fan_out."""
        self._state.check("fan out a webhook event")
        tables = self._tables
        for new in deliveries:
            if new.id in tables.deliveries:
                continue
            if new.not_sent:
                tables.deliveries[new.id] = _Delivery(new, now_ms, "dropped", attempts=new.drop_record(now_ms))
            else:
                tables.deliveries[new.id] = _Delivery(new, now_ms, next_ms=now_ms)
                tables.due[new.id] = now_ms
            tables.logs.setdefault(new.webhook_id, set()).add(new.id)
            if new.not_sent:
                self._trim(new.webhook_id)
        self._state.events.retire(event.entry_id)

    async def claim(self, now_ms: int, lease_ms: int, limit: int, token: str) -> list[ClaimedDelivery]:
        """See Outbox.claim: due ones by due time, then id (as Redis orders equal scores)."""
        self._state.check("claim webhook deliveries")
        tables, claimed = self._tables, []
        due = sorted((ms, i) for i, ms in tables.due.items() if ms <= now_ms)[: max(limit, 0)]
        for _, delivery_id in due:
            delivery = tables.deliveries.get(delivery_id)
            if delivery is None:
                del tables.due[delivery_id]
                continue
            if delivery.lease:
                lost = {"attempt": delivery.attempt, "time_ms": now_ms, "status": 0, "latency_ms": 0}
                delivery.attempts.append({**lost, "error": LOST_ATTEMPT})
            delivery.attempt += 1
            delivery.lease = token
            tables.due[delivery_id] = now_ms + lease_ms
            new = delivery.new
            claimed.append(
                ClaimedDelivery(new.id, new.webhook_id, new.event_id, new.event_type, new.payload, delivery.attempt)
            )
        return claimed

    async def complete(
        self,
        claimed: ClaimedDelivery,
        token: str,
        outcome: str,
        attempt: dict[str, Any],
        *,
        next_ms: int = 0,
        reason: str = "",
        disable_after: int = 0,
    ) -> bool:
        """See Outbox.complete."""
        self._state.check("record a webhook attempt")
        tables = self._tables
        delivery = tables.deliveries.get(claimed.id)
        if delivery is None or delivery.lease != token:
            return False
        delivery.attempts.append(json.loads(json.dumps(attempt, sort_keys=True)))  # as stored: JSON
        delivery.lease = ""
        if outcome == "retry":
            delivery.next_ms = tables.due[claimed.id] = next_ms
            return True
        tables.due.pop(claimed.id, None)
        delivery.state, delivery.next_ms = ("failed" if outcome == "gone" else outcome), None
        hook = tables.hooks.get(claimed.webhook_id)
        if hook is not None and outcome == "succeeded":
            hook.failed_events = 0
        elif hook is not None and outcome == "gone":
            hook.enabled, hook.disabled_reason = False, reason
        elif hook is not None and outcome == "failed":
            hook.failed_events += 1
            if 0 < disable_after <= hook.failed_events and hook.enabled:
                hook.enabled, hook.disabled_reason = False, reason
        self._trim(claimed.webhook_id)
        return True

    def _trim(self, webhook_id: str) -> None:
        """The log's oldest finished deliveries past LOG_LIMIT, at most TRIM_PER_WRITE (as Redis's)."""
        log = self._tables.logs.get(webhook_id, set())
        for old in sorted(log)[: min(max(len(log) - LOG_LIMIT, 0), TRIM_PER_WRITE)]:
            if self._tables.deliveries[old].state != "pending":
                del self._tables.deliveries[old]
                log.discard(old)

    async def deliveries(self, webhook_id: str, count: int, after_id: str) -> list[DeliveryRecord]:
        """See Outbox.deliveries."""
        self._state.check("read webhook deliveries")
        log = self._tables.logs.get(webhook_id, set())
        ids = sorted((i for i in log if not after_id or i < after_id), reverse=True)[: max(count, 0)]
        return [_record(self._tables.deliveries[i]) for i in ids if i in self._tables.deliveries]

    async def add_test_event(self, webhook_id: str, detail: str) -> str:
        """See Outbox.add_test_event."""
        self._state.check("send a test event")
        return self._state.events.append("webhook.test", "", detail, webhook_id).entry_id

    async def take_turn(self, name: str, period_ms: int) -> bool:
        """See Outbox.take_turn."""
        self._state.check("take a turn")
        return self._set_once(f"turn:{name}", self._state.clock() + period_ms)

    async def warn_once(
        self, experiment_id: str, bucket_version: int, experiment_json: str, detail: str, phase: int = 0
    ) -> bool:
        """See Outbox.warn_once."""
        self._state.check("raise an experiment warning")
        if not self._set_once(f"srm:{experiment_id}:{bucket_version}:{phase}", None):
            return False
        self._state.events.append("experiment.warning", experiment_json, detail)
        return True

    def _set_once(self, marker: str, expires_ms: int | None) -> bool:
        """SET NX (PX): True if the marker was absent or expired, and set now."""
        held = self._tables.markers.get(marker, -1)
        if marker in self._tables.markers and (held is None or held > self._state.clock()):
            return False
        self._tables.markers[marker] = expires_ms
        return True


def _record(delivery: _Delivery) -> DeliveryRecord:
    new = delivery.new
    return DeliveryRecord(
        id=new.id,
        webhook_id=new.webhook_id,
        event_id=new.event_id,
        event_type=new.event_type,
        payload=new.payload,
        state=delivery.state,
        attempt=delivery.attempt,
        created_ms=delivery.created_ms,
        next_ms=delivery.next_ms,
        attempts=[dict(a) for a in delivery.attempts],
    )
