"""WebhookManager and WebhookDispatcher on the in-memory stores: definitions, secrets,
test events, fan-out, retries, disabling and the delivery log, with a stand-in sender
and no network (the stores' contracts: tests/store/contracts)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, TypeVar

import pytest

from assignsvc.app.webhooks.dispatcher import DeliverySettings, WebhookDispatcher
from assignsvc.app.webhooks.http import Response, SendError
from assignsvc.app.webhooks.manager import WebhookManager
from assignsvc.core.events import Webhook
from assignsvc.core.model import Arm, Experiment
from assignsvc.core.retry import RetrySchedule
from assignsvc.errors import ConflictError, InvalidArgumentError, NotFoundError
from assignsvc.store.memory import MemoryStores
from assignsvc.store.protocols import MUST_BE_NEW, ChangeEvent

T = TypeVar("T")
HOOK = Webhook(id="", url="https://93.184.216.34/hook", events=("experiment.created",))  # an address: no DNS
EXPERIMENT = Experiment(id="exp", name="exp", arms=(Arm("a", "a", 0.5), Arm("b", "b", 0.5)), revision=1)


class Clock:
    def __init__(self) -> None:
        self.now_ms = 1_000_000

    def __call__(self) -> int:
        return self.now_ms


class Receiver:
    """The sender the dispatcher calls: answers each POST with the next scripted status."""

    def __init__(self, *statuses: int) -> None:
        self.statuses = list(statuses)
        self.bodies: list[dict[str, Any]] = []

    async def __call__(self, url: str, body: bytes, headers: Mapping[str, str], **_: Any) -> Response:
        self.bodies.append(json.loads(body))
        status = self.statuses.pop(0)
        if status == 0:
            raise SendError("connection refused")
        return Response(status, {})


class World:
    def __init__(self, receiver: Receiver, disable_after: int = 5, schedule: RetrySchedule | None = None) -> None:
        self.clock = Clock()
        self.stores = MemoryStores.create(self.clock)
        counter = iter(range(1, 1_000))
        self.manager = WebhookManager(
            self.stores.webhooks,
            self.stores.outbox,
            clock=self.clock,
            random_bytes=lambda n: next(counter).to_bytes(n, "big"),
        )
        schedule = schedule or RetrySchedule((10.0,), jitter=0.0)
        settings = DeliverySettings(schedule=schedule, disable_after=disable_after)
        self.dispatcher = WebhookDispatcher(
            self.stores.webhooks,
            self.stores.outbox,
            lambda raw: {"id": json.loads(raw)["id"]},
            settings,
            clock=self.clock,
            rand=lambda: 0.5,
            sender=receiver,
        )

    async def created(self, experiment: Experiment = EXPERIMENT) -> None:
        """An experiment write recording experiment.created, as the catalog makes it."""
        assert (
            await self.stores.experiments.write([(experiment, MUST_BE_NEW)], [ChangeEvent("experiment.created")])
            is None
        )


def run(receiver: Receiver, body: Callable[[World], Coroutine[Any, Any, T]], **settings: Any) -> T:
    return asyncio.run(body(World(receiver, **settings)))


class TestManager:
    def test_create_get_list_and_delete(self) -> None:
        async def body(world: World) -> None:
            manager = world.manager
            first = await manager.create(HOOK, "default")
            second = await manager.create(HOOK, "default")
            other = await manager.create(HOOK, "ds2")
            assert first.id == "wh_0000000000000001" and first.enabled and len(first.secrets) == 1
            assert await manager.get(first.id) == first
            page, token = await manager.list(1, "", "default")
            rest, end = await manager.list(1, token, "default")
            assert [w.id for w in page + rest] == [first.id, second.id] and end == ""
            assert [w.id for w in (await manager.list(0, "", "ds2"))[0]] == [other.id]
            await manager.delete(first.id)
            with pytest.raises(NotFoundError):
                await manager.get(first.id)
            with pytest.raises(NotFoundError):
                await manager.delete(first.id)
            with pytest.raises(InvalidArgumentError):
                await manager.get("not-a-webhook-id")

        run(Receiver(), body)

    def test_update_and_rotation(self) -> None:
        async def body(world: World) -> None:
            manager = world.manager
            made = await manager.create(HOOK, "default")
            world.clock.now_ms += 5
            updated = await manager.update(dataclasses.replace(made, description="d", url="ignored"), ["description"])
            assert (updated.description, updated.url, updated.update_time_ms) == (
                "d",
                HOOK.url,
                made.create_time_ms + 5,
            )
            rotated = await manager.rotate_secret(made.id, 60)
            assert [s.expires_ms for s in rotated.secrets] == [None, world.clock.now_ms + 60_000]
            assert rotated.secrets[1].value == made.secrets[0].value
            assert (await manager.get(made.id)).secrets == rotated.secrets
            with pytest.raises(InvalidArgumentError):
                await manager.update(dataclasses.replace(made, description="x"), ["secrets"])
            with pytest.raises(NotFoundError):
                await manager.update(dataclasses.replace(made, id="wh_00000000000000ff"), ["description"])

        run(Receiver(), body)

    def test_an_update_that_keeps_losing_the_race_is_a_conflict(self) -> None:
        async def body(world: World) -> None:
            made = await world.manager.create(HOOK, "default")
            real_get = world.stores.webhooks.get
            races = iter(range(100))

            async def get_then_race(webhook_id: str) -> Webhook | None:
                found = await real_get(webhook_id)
                assert found is not None
                raced = dataclasses.replace(found, description=f"race {next(races)}")
                await world.stores.webhooks.save(raced, set_enabled=False)
                return found

            world.stores.webhooks.get = get_then_race  # type: ignore[method-assign]
            with pytest.raises(ConflictError):
                await world.manager.update(dataclasses.replace(made, description="mine"), ["description"])
            world.stores.webhooks.get = real_get  # type: ignore[method-assign]
            assert (await world.manager.get(made.id)).description == "race 4"  # five tries, each raced

        run(Receiver(), body)


class TestDelivery:
    def test_an_event_is_fanned_out_delivered_and_logged(self) -> None:
        async def body(world: World) -> list[Any]:
            await world.stores.outbox.ensure_group()
            hook = await world.manager.create(HOOK, "default")
            await world.created()
            await world.created(dataclasses.replace(EXPERIMENT, id="ds2/exp"))  # another datasource's
            assert await world.dispatcher.fan_out_once() == 2
            assert await world.dispatcher.fan_out_once() == 0
            assert await world.dispatcher.deliver_once() == 1
            page, _ = await world.manager.deliveries(hook.id, 10, "")
            return page

        receiver = Receiver(200)
        [record] = run(receiver, body)
        [sent] = receiver.bodies
        assert sent["type"] == "experiment.created" and sent["data"]["object"] == {"id": "exp"}
        assert record.state == "succeeded" and [a["status"] for a in record.attempts] == [200]

    def test_a_failure_is_retried_at_its_time_then_given_up_and_disables(self) -> None:
        async def body(world: World) -> list[Any]:
            await world.stores.outbox.ensure_group()
            hook = await world.manager.create(HOOK, "default")
            await world.created()
            await world.dispatcher.fan_out_once()
            assert await world.dispatcher.deliver_once() == 1  # 500: retry in 10 s
            world.clock.now_ms += 9_999
            assert await world.dispatcher.deliver_once() == 0
            world.clock.now_ms += 1
            assert await world.dispatcher.deliver_once() == 1  # refused again: given up
            [record] = (await world.manager.deliveries(hook.id, 10, ""))[0]
            return [record, await world.manager.get(hook.id)]

        record, hook = run(Receiver(500, 0), body, disable_after=1)
        assert record.state == "failed" and [a["status"] for a in record.attempts] == [500, 0]
        assert not hook.enabled and "disabled after 1 failed events" in hook.disabled_reason

    def test_gone_disables_and_later_deliveries_are_dropped(self) -> None:
        async def body(world: World) -> list[Any]:
            await world.stores.outbox.ensure_group()
            hook = await world.manager.create(HOOK, "default")
            await world.created()
            await world.created(dataclasses.replace(EXPERIMENT, id="exp2"))
            await world.dispatcher.fan_out_once()
            await world.dispatcher.deliver_once()
            page, _ = await world.manager.deliveries(hook.id, 10, "")
            return [page, await world.manager.get(hook.id)]

        receiver = Receiver(410)
        (second, first), hook = run(receiver, body)
        assert not hook.enabled and "410 Gone" in hook.disabled_reason
        assert len(receiver.bodies) == 1  # the second delivery of the batch found it disabled
        assert {first.state, second.state} == {"failed", "dropped"}

    def test_a_test_event_reaches_only_its_webhook(self) -> None:
        async def body(world: World) -> str:
            await world.stores.outbox.ensure_group()
            hook = await world.manager.create(HOOK, "default")
            await world.manager.create(dataclasses.replace(HOOK, events=("webhook.test",)), "default")
            event_id = await world.manager.send_test(hook.id)
            await world.dispatcher.fan_out_once()
            assert await world.dispatcher.deliver_once() == 1
            return event_id

        receiver = Receiver(204)
        event_id = run(receiver, body)
        [sent] = receiver.bodies
        assert sent["type"] == "webhook.test" and sent["id"] == event_id
        assert sent["data"]["object"] == {"webhook_id": "wh_0000000000000001"}


class TestFormats:
    """A webhook's format: checked against its filter, and events it cannot carry are logged as dropped."""

    def test_an_event_the_format_cannot_carry_is_logged_as_dropped(self) -> None:
        async def body(world: World) -> list[Any]:
            await world.stores.outbox.ensure_group()
            hook = await world.manager.create(dataclasses.replace(HOOK, events=(), format="evidential"), "default")
            await world.created()  # not a draft: committed, so Evidential's experiment.created
            updated = dataclasses.replace(EXPERIMENT, name="renamed", revision=2)
            await world.stores.experiments.write([(updated, 1)], [ChangeEvent("experiment.updated")])
            assert await world.dispatcher.fan_out_once() == 2
            assert await world.dispatcher.deliver_once() == 1  # only the created one is due
            page, _ = await world.manager.deliveries(hook.id, 10, "")
            return page

        receiver = Receiver(200)
        dropped, sent = run(receiver, body)
        assert [b["type"] for b in receiver.bodies] == ["experiment.created"]
        assert receiver.bodies[0]["experiment_id"] == "exp" and "experiment_url" in receiver.bodies[0]
        assert sent.state == "succeeded"
        assert (dropped.state, dropped.event_type, dropped.attempt, dropped.payload) == (
            "dropped",
            "experiment.updated",
            0,
            "",
        )
        assert dropped.attempts[0]["error"] == "not sent: the evidential format has no event for experiment.updated"

    def test_bad_format_and_filters(self) -> None:
        async def body(world: World) -> list[InvalidArgumentError]:
            manager, errors = world.manager, []
            for webhook in (
                dataclasses.replace(HOOK, format="svix"),
                dataclasses.replace(HOOK, format="evidential", events=("experiment.updated",)),
            ):
                with pytest.raises(InvalidArgumentError) as caught:
                    await manager.create(webhook, "default")
                errors.append(caught.value)
            made = await manager.create(dataclasses.replace(HOOK, events=("experiment.warning",)), "default")
            with pytest.raises(InvalidArgumentError) as caught:
                await manager.update(dataclasses.replace(made, format="intelligems"), ["format"])
            errors.append(caught.value)
            changed = await manager.update(
                dataclasses.replace(made, format="intelligems", events=("experiment.created",)), ["format", "events"]
            )
            assert (changed.format, changed.events) == ("intelligems", ("experiment.created",))
            return errors

        unknown, filtered, format_only = run(Receiver(), body)
        assert [v.field for v in unknown.violations] == ["webhook.format"]
        assert "assignsvc, evidential, eppo, intelligems, growthbook" in unknown.violations[0].description
        assert [v.field for v in filtered.violations] == ["webhook.events[0]"]
        assert "carries: experiment.created, experiment.status.updated" in filtered.violations[0].description
        assert [v.field for v in format_only.violations] == ["webhook.format"]
        assert "experiment.warning" in format_only.violations[0].description

    def test_intelligems_gives_up_after_five_attempts(self) -> None:
        async def body(world: World) -> Any:
            await world.stores.outbox.ensure_group()
            hook = await world.manager.create(dataclasses.replace(HOOK, format="intelligems"), "default")
            await world.created()
            await world.dispatcher.fan_out_once()
            for _ in range(5):
                assert await world.dispatcher.deliver_once() == 1
                world.clock.now_ms += 100_000
            assert await world.dispatcher.deliver_once() == 0
            [record] = (await world.manager.deliveries(hook.id, 10, ""))[0]
            return record

        receiver = Receiver(*[500] * 5)
        record = run(receiver, body, schedule=RetrySchedule((1.0,) * 9, jitter=0.0))
        assert record.state == "failed" and record.attempt == 5
        assert all(b["action_type"] == "create" for b in receiver.bodies)
