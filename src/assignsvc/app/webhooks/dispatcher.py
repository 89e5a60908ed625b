"""The delivery worker: events stream -> deliveries -> signed HTTP attempts, off the Assign path.

Two loops per replica, both on the same event loop as the server but never awaited by
an RPC: `fan_out` reads new events through the consumer group (and takes over
entries of a dead replica) and turns each into deliveries; `deliver` claims due
deliveries under a lease and makes the attempts concurrently. Every step is a Redis
script, so a replica killed at any point loses nothing: an unacknowledged entry is
taken over, a leased delivery is due again when its lease ends (at-least-once; the
webhook-id header stays the same so receivers can drop a duplicate).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import secrets
import socket
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from assignsvc.app.webhooks.http import Response, SendError, post
from assignsvc.core.clock import Clock, wall_clock_ms
from assignsvc.core.egress import Network
from assignsvc.core.events import WEBHOOK_TEST, Webhook, matches
from assignsvc.core.retry import RetrySchedule, parse_retry_after
from assignsvc.core.scoping import DEFAULT_DATASOURCE, datasource_of, local_part
from assignsvc.core.signing import standard_headers
from assignsvc.core.webhook_formats import Event, Rendered, evidential_experiment_url, limits, render, rfc3339, signed
from assignsvc.errors import StoreUnavailableError
from assignsvc.metrics import WEBHOOK_DELIVERIES
from assignsvc.store.outbox import ClaimedDelivery, NewDelivery, StreamEvent
from assignsvc.store.protocols import Outbox, WebhookStore

log = logging.getLogger(__name__)

Sender = Callable[..., Awaitable[Response]]
# Stored experiment JSON -> the experiment as the API returns it (wired by the server).
Render = Callable[[str], Mapping[str, Any]]


@dataclass(frozen=True, slots=True)
class DeliverySettings:
    """How deliveries are made (config.ServerConfig's webhook_* values)."""

    timeout_s: float = 10.0
    schedule: RetrySchedule = field(default_factory=RetrySchedule)
    disable_after: int = 5  # events given up on in a row; 0 = never disable
    allowed: Sequence[Network] = ()
    poll_interval_s: float = 0.25
    concurrency: int = 16
    lease_margin_s: float = 5.0  # beyond the timeout: connect, Redis round trips, a slow event loop
    public_url: str = ""  # this server's HTTP base URL, for the evidential format's experiment_url

    @property
    def lease_ms(self) -> int:
        """How long an attempt may take before another replica may retry the delivery; also
        how long an event may stay unacknowledged before another replica takes it over
        (fan-out takes milliseconds: only a dead replica leaves one that long)."""
        return int((self.timeout_s + max(self.lease_margin_s, self.timeout_s)) * 1000)


def consumer_name() -> str:
    """This replica in the consumer group: host, pid and a random part (pids get reused)."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


class WebhookDispatcher:
    """Fans events out to webhooks and delivers them with retries."""

    def __init__(
        self,
        webhooks: WebhookStore,
        outbox: Outbox,
        render: Render,
        settings: DeliverySettings,
        *,
        clock: Clock = wall_clock_ms,
        rand: Callable[[], float] | None = None,
        sender: Sender = post,
        signing_clock: Clock = wall_clock_ms,
    ) -> None:
        """`clock` schedules (tests move it); `signing_clock` stamps webhook-timestamp, which
        receivers compare with their own clock, so it stays the wall clock."""
        self._webhooks = webhooks
        self._outbox = outbox
        self._render = render
        self._settings = settings
        self._clock = clock
        # Its own generator for the retry jitter: drawing from the random module's shared
        # state would disturb anything else in the process that seeded it.
        self._rand = rand if rand is not None else random.Random().random
        self._send = sender
        self._signing_clock = signing_clock
        self._consumer = consumer_name()
        self._token = secrets.token_hex(8)
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self._in_flight: set[asyncio.Task[None]] = set()  # attempts started by the background loop

    async def start(self) -> None:
        """Create the consumer group if needed and start both loops."""
        await self._outbox.ensure_group()
        self._tasks = [
            asyncio.create_task(self._forever(self.fan_out_once, "fan-out"), name="webhook-fan-out"),
            asyncio.create_task(self._forever(self._start_attempts, "delivery"), name="webhook-delivery"),
        ]

    async def stop(self) -> None:
        """Stop both loops; an attempt cut short is retried (by any replica) after its lease."""
        self._stopping = True  # also ends the loops should a library swallow the cancellation
        tasks = [*self._tasks, *self._in_flight]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    async def _forever(self, step: Callable[[], Awaitable[int]], what: str) -> None:
        while not self._stopping:
            try:
                busy = await step()
            except StoreUnavailableError as exc:
                log.warning("webhook %s: %s", what, exc)
                busy = 0
            except Exception:
                log.exception("webhook %s failed; continuing", what)
                busy = 0
            task = asyncio.current_task()
            if task is not None and task.cancelling():  # a Redis call turned our cancellation into an error
                raise asyncio.CancelledError
            if not busy:
                await asyncio.sleep(self._settings.poll_interval_s)

    # --- fan-out --------------------------------------------------------------------------

    async def fan_out_once(self) -> int:
        """Turn new (and abandoned) events into deliveries; how many events were handled."""
        events = await self._outbox.take_over(self._consumer, self._settings.lease_ms, 100)
        events += await self._outbox.read_events(self._consumer, 100)
        if not events:
            return 0
        webhooks = await self._webhooks.all()
        for event in events:
            try:
                deliveries = self._deliveries(event, webhooks)
            except Exception:  # a bad entry must not hold back the events behind it, forever
                log.exception(
                    "webhook event %s (%s) cannot be rendered; acknowledged without deliveries",
                    event.ordinal,
                    event.type,
                )
                deliveries = []
            await self._outbox.fan_out(event, deliveries, self._clock())
            for dropped in (d for d in deliveries if d.not_sent):
                log.debug("webhook %s: %s %s", dropped.webhook_id, dropped.event_id, dropped.not_sent)
                WEBHOOK_DELIVERIES.labels("dropped").inc()
        return len(events)

    def _deliveries(self, event: StreamEvent, webhooks: Sequence[Webhook]) -> list[NewDelivery]:
        """One delivery per webhook the event is for, its body in the webhook's format (a
        format with no name for the event gives a delivery recorded as dropped)."""
        event_id = "evt_" + event.ordinal
        experiment: Mapping[str, Any] | None = None
        if event.type == WEBHOOK_TEST:
            targets = [w for w in webhooks if w.id == event.target]
            owner = datasource_of(event.target)
            detail: dict[str, Any] = {"object": json.loads(event.detail)}
        else:
            owner = datasource_of(json.loads(event.experiment)["id"]) if event.experiment else DEFAULT_DATASOURCE
            targets = [
                w for w in webhooks if w.enabled and matches(w.events, event.type) and datasource_of(w.id) == owner
            ]
            experiment = self._render(event.experiment) if event.experiment else None
            detail = json.loads(event.detail)
        local_id = local_part(str((experiment or {}).get("id", "")))
        url = evidential_experiment_url(self._settings.public_url, local_id) if experiment else ""
        facts = Event(event_id, event.type, event.time_ms, experiment, detail, owner, url)
        bodies: dict[str, Rendered] = {}
        out = []
        for w in targets:
            rendered = bodies.get(w.format) or bodies.setdefault(w.format, render(w.format, facts))
            delivery_id = f"msg_{event.ordinal}_{local_part(w.id)}"
            out.append(NewDelivery(delivery_id, w.id, event_id, event.type, rendered.body, rendered.not_sent))
        return out

    # --- delivery -------------------------------------------------------------------------

    async def deliver_once(self) -> int:
        """Make the due attempts (up to the concurrency) and wait for them; how many there were."""
        claimed = await self._outbox.claim(
            self._clock(), self._settings.lease_ms, self._settings.concurrency, self._token
        )
        if claimed:
            await asyncio.gather(*(self._attempt(c) for c in claimed))
        return len(claimed)

    async def _start_attempts(self) -> int:
        """The background loop's step: claim as many due deliveries as there are free slots and
        start their attempts without waiting, so one slow receiver never holds up the others."""
        free = self._settings.concurrency - len(self._in_flight)
        if free <= 0:
            return 0
        claimed = await self._outbox.claim(self._clock(), self._settings.lease_ms, free, self._token)
        for delivery in claimed:
            task = asyncio.create_task(self._attempt(delivery), name=f"webhook-attempt-{delivery.id}")
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)
        return len(claimed)

    async def _attempt(self, claimed: ClaimedDelivery) -> None:
        try:
            await self._attempt_once(claimed)
        except StoreUnavailableError as exc:  # the lease runs out and the delivery is tried again
            log.warning("webhook attempt %s not recorded: %s", claimed.id, exc)
        except Exception:  # a bug; the lease runs out and the delivery is tried again
            log.exception("webhook attempt %s failed", claimed.id)

    async def _attempt_once(self, claimed: ClaimedDelivery) -> None:
        webhook = await self._webhooks.get(claimed.webhook_id)
        if webhook is None or not webhook.enabled:
            why = "webhook deleted" if webhook is None else "webhook disabled"
            await self._complete(claimed, "dropped", self._record(claimed, 0, 0, why))
            return
        started = time.monotonic()  # latency is real time even when the clock is a test's
        status, error, retry_after = await self._post(webhook, claimed)
        latency_ms = int((time.monotonic() - started) * 1000)
        await self._finish(webhook, claimed, status, error, retry_after=retry_after, latency_ms=latency_ms)

    async def _post(self, webhook: Webhook, claimed: ClaimedDelivery) -> tuple[int, str, float | None]:
        """(HTTP status or 0, error or '', seconds asked by Retry-After)."""
        now_ms = self._clock()
        keys = webhook.live_secrets(now_ms)
        body, extra = signed(webhook.format, claimed.payload, keys[0] if keys else None, sign_body=webhook.sign_body)
        raw = body.encode()
        headers = standard_headers(keys, claimed.id, self._signing_clock() // 1000, raw)
        headers.update(extra)
        if webhook.token:
            headers["Webhook-Token"] = webhook.token
        cap = limits(webhook.format).timeout_s
        timeout_s = self._settings.timeout_s if cap is None else min(cap, self._settings.timeout_s)
        try:
            response = await self._send(webhook.url, raw, headers, timeout_s=timeout_s, allowed=self._settings.allowed)
        except SendError as exc:
            return 0, str(exc), None
        if 200 <= response.status < 300:
            return response.status, "", None
        retry_after = None
        if response.status in (429, 503) and "retry-after" in response.headers:
            retry_after = parse_retry_after(response.headers["retry-after"], time.time())
        if 300 <= response.status < 400:
            where = response.headers.get("location", "")
            return response.status, f"HTTP {response.status}: redirect to {where[:200]!r} not followed", None
        return response.status, f"HTTP {response.status}", retry_after

    async def _finish(
        self,
        webhook: Webhook,
        claimed: ClaimedDelivery,
        status: int,
        error: str,
        *,
        retry_after: float | None,
        latency_ms: int,
    ) -> None:
        record = self._record(claimed, status, latency_ms, error)
        if not error:
            await self._complete(claimed, "succeeded", record)
            return
        if status == 410:
            reason = f"disabled: the receiver answered 410 Gone at {rfc3339(self._clock())}"
            await self._complete(claimed, "gone", record, reason=reason)
            return
        wait = self._settings.schedule.compute(claimed.attempt, self._rand())
        most = limits(webhook.format).max_attempts
        if most is not None and claimed.attempt >= most:
            wait = None
        if wait is not None:
            if retry_after is not None:
                wait = retry_after
            await self._complete(claimed, "retry", record, next_ms=self._clock() + int(wait * 1000))
            return
        limit = self._settings.disable_after
        reason = (
            f"disabled after {limit} failed events in a row (last: {claimed.event_id}, "
            f"{claimed.attempt} attempts, {error})"
        )
        await self._complete(claimed, "failed", record, reason=reason, disable_after=limit)

    async def _complete(self, claimed: ClaimedDelivery, outcome: str, record: dict[str, Any], **extra: Any) -> None:
        """Record the attempt's outcome, and count it once it is recorded (metrics)."""
        await self._outbox.complete(claimed, self._token, outcome, record, **extra)
        WEBHOOK_DELIVERIES.labels(outcome).inc()

    def _record(self, claimed: ClaimedDelivery, status: int, latency_ms: int, error: str) -> dict[str, Any]:
        return {
            "attempt": claimed.attempt,
            "time_ms": self._clock(),
            "status": status,
            "latency_ms": latency_ms,
            "error": error[:500],
        }
