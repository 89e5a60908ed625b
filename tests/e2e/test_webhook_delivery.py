"""Delivery against a real HTTP receiver on loopback and a real Redis, with a clock the
test moves: retries on 500, timeouts and resets with the exact backoff, Retry-After,
410, auto-disable, rotation, the SSRF guard at send time, redirects, huge bodies."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import ipaddress
import json
import time
from collections.abc import Awaitable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest
from standardwebhooks import Webhook as Verifier
from standardwebhooks.webhooks import WebhookVerificationError

from assignsvc.app.webhooks import DeliverySettings, WebhookDispatcher, WebhookManager
from assignsvc.core.events import Webhook, canonical_json
from assignsvc.core.retry import RetrySchedule
from assignsvc.errors import InvalidArgumentError
from assignsvc.store.connection import connect
from assignsvc.store.keys import Keyspace
from assignsvc.store.outbox import DeliveryRecord, RedisOutbox
from assignsvc.store.webhooks import RedisWebhookStore
from tests.support.webhook_receiver import Answer, Receiver, receiver

LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"),)
T = TypeVar("T")


class FakeClock:
    """Milliseconds that move only when the test says (starting now, so signatures are fresh)."""

    def __init__(self) -> None:
        self.ms = int(time.time() * 1000)

    def __call__(self) -> int:
        return self.ms

    def advance(self, seconds: float) -> None:
        self.ms += int(seconds * 1000)


@dataclass
class Stack:
    """Manager and dispatcher on one Redis, driven step by step by the test."""

    loop: asyncio.AbstractEventLoop
    manager: WebhookManager
    dispatcher: WebhookDispatcher
    outbox: RedisOutbox
    clock: FakeClock
    redis: Any

    def close(self) -> None:
        self.run(self.redis.aclose())
        self.loop.close()

    def run(self, coro: Awaitable[T]) -> T:
        return self.loop.run_until_complete(coro)

    def create(self, url: str, **fields: Any) -> Webhook:
        return self.run(self.manager.create(Webhook(id="", url=url, **fields), "default"))

    def test_event(self, webhook: Webhook) -> str:
        return self.run(self.manager.send_test(webhook.id))

    def step(self) -> int:
        """One fan-out pass and one delivery pass; how many attempts were made."""
        self.run(self.dispatcher.fan_out_once())
        return self.run(self.dispatcher.deliver_once())

    def log(self, webhook: Webhook) -> list[DeliveryRecord]:
        return self.run(self.manager.deliveries(webhook.id, 100, ""))[0]

    def get(self, webhook: Webhook) -> Webhook:
        return self.run(self.manager.get(webhook.id))


def make_stack(redis_url: str, settings: DeliverySettings, manager_allowed: tuple[Any, ...] = LOOPBACK) -> Stack:
    loop = asyncio.new_event_loop()
    clock = FakeClock()
    redis = connect(redis_url, 1.0)
    keys = Keyspace()
    store, outbox = RedisWebhookStore(redis, keys), RedisOutbox(redis, keys)
    manager = WebhookManager(store, outbox, manager_allowed, clock=clock)
    dispatcher = WebhookDispatcher(store, outbox, json.loads, settings, clock=clock, rand=lambda: 0.5)
    loop.run_until_complete(outbox.ensure_group())
    return Stack(loop, manager, dispatcher, outbox, clock, redis)


SETTINGS = DeliverySettings(timeout_s=0.5, schedule=RetrySchedule((5.0, 30.0, 180.0, 1080.0)), allowed=LOOPBACK)


@pytest.fixture
def stack(redis_url: str) -> Iterator[Stack]:
    s = make_stack(redis_url, SETTINGS)
    yield s
    s.close()


@pytest.fixture
def hook() -> Iterator[Receiver]:
    with receiver() as r:
        yield r


def verify(secret: str, request: Any) -> Any:
    return Verifier(secret).verify(request.body, request.headers)


class TestDelivery:
    """A 2xx answer delivers once, signed, with the stable webhook-id."""

    def test_signed_and_logged(self, stack: Stack, hook: Receiver) -> None:
        webhook = stack.create(hook.url)
        event_id = stack.test_event(webhook)
        assert stack.step() == 1
        [request] = hook.received()
        body = verify(webhook.secrets[0].value, request)
        assert body["type"] == "webhook.test" and body["id"] == event_id
        assert set(body) == {"id", "type", "api_version", "created", "data"}
        [record] = stack.log(webhook)
        assert record.state == "succeeded" and record.id == request.headers["webhook-id"]
        assert record.attempts[0]["status"] == 200
        assert stack.step() == 0  # nothing left
        assert len(hook.received()) == 1

    def test_token_and_body_signature(self, stack: Stack, hook: Receiver) -> None:
        webhook = stack.create(hook.url, token="tok-123", sign_body=True)
        stack.test_event(webhook)
        stack.step()
        [request] = hook.received()
        assert request.headers["webhook-token"] == "tok-123"
        body = verify(webhook.secrets[0].value, request)
        raw = request.body.decode()
        data_json = raw[raw.index('"data":') + len('"data":') : raw.index(',"id":')]
        assert data_json == canonical_json(body["data"])
        key = base64.b64decode(webhook.secrets[0].value.removeprefix("whsec_"))
        assert body["signature"] == hmac.new(key, data_json.encode(), hashlib.sha256).hexdigest()
        tampered = raw.replace('"webhook_id"', '"webhook_iD"').encode()
        with pytest.raises(WebhookVerificationError):
            Verifier(webhook.secrets[0].value).verify(tampered, request.headers)

    def test_no_token_no_body_signature_by_default(self, stack: Stack, hook: Receiver) -> None:
        stack.test_event(stack.create(hook.url))
        stack.step()
        [request] = hook.received()
        assert "webhook-token" not in request.headers
        assert "signature" not in json.loads(request.body)


class TestDurability:
    """Fan-out is idempotent, and an event a dead replica read but never fanned out is taken over."""

    def test_fan_out_twice_creates_one_delivery(self, stack: Stack, hook: Receiver) -> None:
        webhook = stack.create(hook.url)
        stack.test_event(webhook)
        [event] = stack.run(stack.outbox.read_events("dead", 10))
        webhooks = [stack.get(webhook)]
        for _ in range(2):
            deliveries = stack.dispatcher._deliveries(event, webhooks)  # what a replica computes
            stack.run(stack.outbox.fan_out(event, deliveries, stack.clock.ms))
        assert len(stack.log(webhook)) == 1
        assert stack.step() == 1 and len(hook.received()) == 1

    def test_an_event_that_cannot_be_rendered_does_not_hold_back_the_next(
        self, stack: Stack, hook: Receiver, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        webhook = stack.create(hook.url)
        stack.test_event(webhook)
        stack.test_event(webhook)
        real = stack.dispatcher._deliveries
        seen: list[str] = []

        def render_fails_once(event: Any, webhooks: Any) -> Any:
            seen.append(event.ordinal)
            if len(seen) == 1:
                raise ValueError("stored experiment JSON that no longer parses")
            return real(event, webhooks)

        monkeypatch.setattr(stack.dispatcher, "_deliveries", render_fails_once)
        assert stack.step() == 1  # the second event's delivery is made in the same pass
        assert len(seen) == 2 and len(hook.received()) == 1
        assert stack.step() == 0  # the bad one was acknowledged, not retaken for ever

    def test_event_of_a_dead_replica_is_taken_over(self, redis_url: str, hook: Receiver) -> None:
        settings = DeliverySettings(timeout_s=0.1, lease_margin_s=0.2, allowed=LOOPBACK)
        stack = make_stack(redis_url, settings)
        try:
            webhook = stack.create(hook.url)
            stack.test_event(webhook)
            assert len(stack.run(stack.outbox.read_events("dead-replica", 10))) == 1  # read, then it "died"
            assert stack.step() == 0  # not idle long enough: its owner may still be working on it
            time.sleep(settings.lease_ms / 1000 + 0.1)
            assert stack.step() == 1
            assert len(hook.received()) == 1
        finally:
            stack.close()

    def test_lease_of_a_dead_worker_expires(self, stack: Stack, hook: Receiver) -> None:
        webhook = stack.create(hook.url)
        stack.test_event(webhook)
        stack.run(stack.dispatcher.fan_out_once())
        [claimed] = stack.run(stack.outbox.claim(stack.clock.ms, SETTINGS.lease_ms, 10, "dead-worker"))
        assert stack.step() == 0  # leased: nobody else tries it
        stack.clock.advance(SETTINGS.lease_ms / 1000)
        assert stack.step() == 1
        [record] = stack.log(webhook)
        assert record.state == "succeeded" and record.attempt == 2
        assert "lost" in record.attempts[0]["error"] and record.attempts[1]["status"] == 200
        assert not stack.run(stack.outbox.complete(claimed, "dead-worker", "succeeded", {}))  # its lease is gone


class TestBackgroundLoops:
    """The server's loops: a receiver that hangs holds one slot, never the other webhooks."""

    def test_slow_receiver_does_not_hold_up_others(self, redis_url: str) -> None:
        stack = make_stack(redis_url, DeliverySettings(timeout_s=2.0, allowed=LOOPBACK, poll_interval_s=0.02))
        try:
            with receiver() as slow, receiver() as fast:
                slow.script(Answer(delay_s=3))
                slow_hook, fast_hook = stack.create(slow.url), stack.create(fast.url)

                async def scenario() -> float:
                    await stack.dispatcher.start()
                    try:
                        await stack.manager.send_test(slow_hook.id)
                        while not slow.received():
                            await asyncio.sleep(0.01)
                        started = time.monotonic()  # the slow attempt is now in flight
                        await stack.manager.send_test(fast_hook.id)
                        while not fast.received():
                            await asyncio.sleep(0.01)
                        return time.monotonic() - started
                    finally:
                        await stack.dispatcher.stop()

                took = stack.run(scenario())
                assert took < 1.0  # not the slow receiver's 2 s timeout
        finally:
            stack.close()


class TestRetries:
    """Failed attempts are retried on the schedule (measured on the test's clock), then given up."""

    @pytest.mark.parametrize(
        "failure", [Answer(status=500), Answer(delay_s=1.5), Answer(reset=True)], ids=["500", "timeout", "reset"]
    )
    def test_backoff(self, stack: Stack, hook: Receiver, failure: Answer) -> None:
        webhook = stack.create(hook.url)
        hook.script(*[failure] * 5)
        stack.test_event(webhook)
        start = stack.clock.ms
        attempts_at = []
        for wait in (0, 5, 30, 180, 1080):
            stack.clock.advance(wait - 0.001 if wait else 0)
            if wait:
                assert stack.step() == 0, "an attempt came early"
                stack.clock.advance(0.001)
            started = time.monotonic()
            assert stack.step() == 1
            assert time.monotonic() - started < 1.4  # a hung receiver costs the 0.5 s timeout, no more
            attempts_at.append((stack.clock.ms - start) / 1000)
        assert attempts_at == [0, 5, 35, 215, 1295]
        [record] = stack.log(webhook)
        assert record.state == "failed" and record.attempt == 5 and len(record.attempts) == 5
        assert all(a["error"] for a in record.attempts)
        ids = {r.headers["webhook-id"] for r in hook.received()}
        assert len(ids) == 1  # the same webhook-id on every attempt
        stack.clock.advance(100_000)
        assert stack.step() == 0

    def test_retry_after_is_honoured(self, stack: Stack, hook: Receiver) -> None:
        webhook = stack.create(hook.url)
        hook.script(
            Answer(status=503, headers={"Retry-After": "120"}), Answer(status=429, headers={"Retry-After": "7"})
        )
        stack.test_event(webhook)
        stack.step()
        [record] = stack.log(webhook)
        assert record.next_ms == stack.clock.ms + 120_000
        stack.clock.advance(119)
        assert stack.step() == 0
        stack.clock.advance(1)
        assert stack.step() == 1
        assert stack.log(webhook)[0].next_ms == stack.clock.ms + 7_000
        stack.clock.advance(7)
        assert stack.step() == 1
        assert stack.log(webhook)[0].state == "succeeded"

    def test_huge_answer_body_is_not_read(self, stack: Stack, hook: Receiver) -> None:
        webhook = stack.create(hook.url)
        hook.script(Answer(status=500, body_bytes=10 * 1024 * 1024), Answer(status=200, body_bytes=10 * 1024 * 1024))
        stack.test_event(webhook)
        started = time.monotonic()
        stack.step()
        stack.clock.advance(5)
        stack.step()
        assert time.monotonic() - started < 2
        record = stack.log(webhook)[0]
        assert [a["status"] for a in record.attempts] == [500, 200] and record.state == "succeeded"


class TestDisabling:
    """410 disables at once; repeated failed events disable with the reason in Get."""

    def test_gone(self, stack: Stack, hook: Receiver) -> None:
        webhook = stack.create(hook.url)
        hook.script(Answer(status=410))
        stack.test_event(webhook)
        stack.step()
        got = stack.get(webhook)
        assert not got.enabled and "410" in got.disabled_reason
        assert stack.log(webhook)[0].state == "failed"
        stack.test_event(webhook)
        stack.step()
        assert len(hook.received()) == 1  # a disabled webhook gets nothing more
        assert stack.log(webhook)[0].state == "dropped"

    def test_after_failed_events(self, redis_url: str, hook: Receiver) -> None:
        stack = make_stack(
            redis_url,
            DeliverySettings(timeout_s=0.5, schedule=RetrySchedule((1.0,)), disable_after=2, allowed=LOOPBACK),
        )
        try:
            webhook = stack.create(hook.url)
            hook.script(*[Answer(status=500)] * 4)
            for expected_failed in (1, 2):
                stack.test_event(webhook)
                stack.step()
                stack.clock.advance(1)
                stack.step()
                assert stack.get(webhook).failed_events == expected_failed
            got = stack.get(webhook)
            assert not got.enabled
            assert "2 failed events in a row" in got.disabled_reason and "HTTP 500" in got.disabled_reason
            updated = stack.run(stack.manager.update(Webhook(id=webhook.id, url="", enabled=True), ["enabled"]))
            assert updated.enabled and updated.disabled_reason == "" and updated.failed_events == 0
        finally:
            stack.close()

    def test_success_resets_the_count(self, redis_url: str, hook: Receiver) -> None:
        stack = make_stack(
            redis_url, DeliverySettings(timeout_s=0.5, schedule=RetrySchedule(()), disable_after=2, allowed=LOOPBACK)
        )
        try:
            webhook = stack.create(hook.url)
            hook.script(Answer(status=500), Answer(status=200), Answer(status=500))
            for _ in range(3):
                stack.test_event(webhook)
                stack.step()
            assert stack.get(webhook).enabled and stack.get(webhook).failed_events == 1
        finally:
            stack.close()


class TestRotation:
    """Old and new secrets both sign during the grace period, then only the new one."""

    def test_grace_period(self, stack: Stack, hook: Receiver) -> None:
        webhook = stack.create(hook.url)
        old = webhook.secrets[0].value
        rotated = stack.run(stack.manager.rotate_secret(webhook.id, 3600))
        new = rotated.secrets[0].value
        assert new != old
        stack.test_event(webhook)
        stack.step()
        during = hook.received()[-1]
        assert len(during.headers["webhook-signature"].split(" ")) == 2
        verify(old, during)
        verify(new, during)
        stack.clock.advance(3601)
        stack.test_event(webhook)
        stack.step()
        after = hook.received()[-1]
        verify(new, after)
        with pytest.raises(WebhookVerificationError):
            verify(old, after)

    def test_bad_grace_refused(self, stack: Stack, hook: Receiver) -> None:
        webhook = stack.create(hook.url)
        with pytest.raises(InvalidArgumentError):
            stack.run(stack.manager.rotate_secret(webhook.id, 30 * 86400))


class TestSsrfAtSend:
    """The address is checked again at each send, and redirects are never followed."""

    def test_refused_at_send_time(self, redis_url: str, hook: Receiver) -> None:
        # Created while loopback was allowed; the sender no longer allows it (as after a DNS change).
        stack = make_stack(redis_url, DeliverySettings(timeout_s=0.5, allowed=()))
        try:
            webhook = stack.create(hook.url.replace("127.0.0.1", "localhost"))
            stack.test_event(webhook)
            stack.step()
            [attempt] = stack.log(webhook)[0].attempts
            assert "loopback" in attempt["error"] and attempt["status"] == 0
            assert hook.received() == []
        finally:
            stack.close()

    def test_redirect_to_private_not_followed(self, stack: Stack, hook: Receiver) -> None:
        webhook = stack.create(hook.url)
        hook.script(Answer(status=302, headers={"Location": "http://10.0.0.1/admin"}))
        stack.test_event(webhook)
        stack.step()
        [attempt] = stack.log(webhook)[0].attempts
        assert attempt["status"] == 302 and "not followed" in attempt["error"]
        assert len(hook.received()) == 1 and stack.log(webhook)[0].state == "pending"

    @pytest.mark.parametrize(
        "url",
        [
            "http://10.0.0.1/",
            "http://172.16.0.1/",
            "http://192.168.0.1/",
            "http://169.254.169.254/latest",
            "http://[fc00::1]/",
            "http://[fd00:ec2::254]/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::ffff:a00:1]/",
            "http://2130706433/",
            "http://0x7f000001/",
            "http://0177.0.0.1/",
            "http://localhost/",
            "http://[::1]/",
            "http://0.0.0.0/",
        ],
    )
    def test_refused_at_creation(self, redis_url: str, url: str) -> None:
        stack = make_stack(redis_url, SETTINGS, manager_allowed=())
        try:
            with pytest.raises(InvalidArgumentError) as caught:
                stack.create(url)
            [violation] = caught.value.violations
            assert violation.field == "webhook.url" and "may not reach" in violation.description
        finally:
            stack.close()
