"""Contract tests of the webhook stores (outbox, definitions) and of the events that
experiment writes append, against a real standalone Redis and a real Redis Cluster."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest

from assignsvc.core.events import Webhook
from assignsvc.core.model import Arm, Experiment
from assignsvc.store import RedisExperimentStore
from assignsvc.store.connection import RedisClient, connect
from assignsvc.store.keys import Keyspace
from assignsvc.store.outbox import NewDelivery, RedisOutbox
from assignsvc.store.protocols import MUST_BE_NEW, ChangeEvent
from assignsvc.store.webhooks import RedisWebhookStore

T = TypeVar("T")
KEYS = Keyspace()
EXPERIMENT = Experiment(id="exp", name="exp", arms=(Arm("a", "a", 0.5), Arm("b", "b", 0.5)), revision=1)
HOOK = Webhook(id="wh_0123456789abcdef", url="https://example.com/hook", events=("experiment.created",))


@pytest.fixture(params=["standalone", "cluster"])
def url(request: pytest.FixtureRequest) -> str:
    """Each test runs against both deployments."""
    return str(request.getfixturevalue("redis_url" if request.param == "standalone" else "cluster_url"))


def run(url: str, body: Callable[[RedisClient], Awaitable[T]]) -> T:
    async def main() -> T:
        redis = connect(url, timeout_s=2.0)
        try:
            return await body(redis)
        finally:
            await redis.aclose()

    return asyncio.run(main())


class TestEventsWithWrites:
    """A write and its events are one atomic step: a refused write records no event."""

    def test_write_archive_and_conflict(self, url: str) -> None:
        async def body(redis: RedisClient) -> list[Any]:
            store, outbox = RedisExperimentStore(redis, KEYS), RedisOutbox(redis, KEYS)
            await outbox.ensure_group()
            await store.write([(EXPERIMENT, MUST_BE_NEW)], [ChangeEvent("experiment.created")])
            renamed = dataclasses.replace(EXPERIMENT, name="n", revision=2)
            stale = await store.write([(renamed, 7)], [ChangeEvent("experiment.updated", 0, '{"x":1}')])
            await store.write(
                [(renamed, 1)],
                [ChangeEvent("experiment.updated", 0, '{"x":1}'), ChangeEvent("experiment.status.updated", 0, "{}")],
            )
            await store.archive("exp", None)
            return [stale, await outbox.read_events("c", 10)]

        stale, events = run(url, body)
        assert stale is not None
        assert [e.type for e in events] == [
            "experiment.created",
            "experiment.updated",
            "experiment.status.updated",
            "experiment.deleted",
        ]
        assert '"name":"n"' in events[1].experiment and events[1].detail == '{"x":1}'
        assert [e.ordinal for e in events] == sorted(e.ordinal for e in events)


class TestOutbox:
    """Fan-out, claim, complete and the log work the same on both deployments."""

    def test_round_trip(self, url: str) -> None:
        async def body(redis: RedisClient) -> list[Any]:
            outbox, hooks = RedisOutbox(redis, KEYS), RedisWebhookStore(redis, KEYS)
            await outbox.ensure_group()
            await outbox.ensure_group()  # idempotent
            assert await hooks.create(HOOK)
            assert not await hooks.create(HOOK)
            await outbox.add_test_event(HOOK.id, "{}")
            [event] = await outbox.read_events("c1", 10)
            assert await outbox.read_events("c2", 10) == []  # each entry goes to one consumer
            delivery = NewDelivery(f"msg_{event.ordinal}_{HOOK.id}", HOOK.id, "evt", event.type, "{}")
            await outbox.fan_out(event, [delivery], 1_000)
            await outbox.fan_out(event, [delivery], 1_000)  # a replay creates nothing twice
            assert await outbox.take_over("c3", 0, 10) == []  # acknowledged
            [claimed] = await outbox.claim(1_000, 500, 10, "t1")
            assert await outbox.claim(1_000, 500, 10, "t2") == []  # leased
            assert await outbox.complete(claimed, "t1", "failed", {"attempt": 1}, reason="r", disable_after=1)
            rows = await outbox.deliveries(HOOK.id, 10, "")
            got = await hooks.get(HOOK.id)
            assert await outbox.warn_once("exp", 0, "{}", "{}")
            assert not await outbox.warn_once("exp", 0, "{}", "{}")
            assert await outbox.warn_once("exp", 1, "{}", "{}")
            assert await hooks.delete(HOOK.id)
            return [rows, got, await hooks.all(), await outbox.deliveries(HOOK.id, 10, "")]

        rows, got, remaining, log_after = run(url, body)
        [row] = rows
        assert row.state == "failed" and row.attempts == [{"attempt": 1}]
        assert got is not None and not got.enabled and got.disabled_reason == "r" and got.failed_events == 1
        assert got.events == HOOK.events and got.url == HOOK.url
        assert remaining == [] and log_after == []


class TestWebhookWrites:
    def test_a_save_based_on_a_stale_read_writes_nothing(self, url: str) -> None:
        """An update racing a secret rotation must not put the old secret back (found in review)."""

        async def body(redis: RedisClient) -> tuple[Any, Any, Any]:
            hooks = RedisWebhookStore(redis, KEYS)
            assert await hooks.create(HOOK)
            read = await hooks.get(HOOK.id)
            assert read is not None
            rotated = dataclasses.replace(read, description="rotated meanwhile")
            assert await hooks.save(rotated, set_enabled=False, read=read) is True
            stale = dataclasses.replace(read, url="https://example.com/other")
            outcome = await hooks.save(stale, set_enabled=False, read=read)
            return outcome, await hooks.get(HOOK.id), await hooks.save(stale, set_enabled=False)

        outcome, stored, unconditional = run(url, body)
        assert outcome is None
        assert stored.description == "rotated meanwhile" and stored.url == HOOK.url
        assert unconditional is True
