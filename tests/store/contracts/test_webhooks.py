"""WebhookStore and Outbox contract: definitions with conditional saves; events recorded
with the writes that cause them; fan-out, leased claims, outcomes and the log; markers."""

from __future__ import annotations

import dataclasses
from typing import Any

from assignsvc.core.events import Webhook
from assignsvc.core.model import Arm, Experiment
from assignsvc.store.outbox import LOG_LIMIT, NewDelivery
from assignsvc.store.protocols import MUST_BE_NEW, ChangeEvent
from tests.store.contracts.harness import DEPLOYMENTS, Deployment, Stores, run

KINDS = DEPLOYMENTS
EXPERIMENT = Experiment(id="exp", name="exp", arms=(Arm("a", "a", 0.5), Arm("b", "b", 0.5)), revision=1)
HOOK = Webhook(id="wh_0123456789abcdef", url="https://example.com/hook", events=("experiment.created",))


def delivery(name: str, webhook_id: str = HOOK.id) -> NewDelivery:
    return NewDelivery(f"msg_{name}_{webhook_id}", webhook_id, f"evt_{name}", "experiment.created", "{}")


async def fanned_out(stores: Stores, *deliveries: NewDelivery, now_ms: int = 1_000) -> None:
    """Deliveries created from one test event."""
    await stores.outbox.ensure_group()
    await stores.outbox.add_test_event(HOOK.id, "{}")
    [event] = await stores.outbox.read_events("c", 1)
    await stores.outbox.fan_out(event, list(deliveries), now_ms)


class TestEventsWithWrites:
    """A write and its events are one atomic step: a refused write records no event."""

    def test_write_archive_and_conflict(self, deployment: Deployment) -> None:
        async def body(stores: Stores) -> list[Any]:
            store, outbox = stores.experiments, stores.outbox
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

        stale, events = run(deployment, body)
        assert stale is not None
        assert [e.type for e in events] == [
            "experiment.created",
            "experiment.updated",
            "experiment.status.updated",
            "experiment.deleted",
        ]
        assert '"name":"n"' in events[1].experiment and events[1].detail == '{"x":1}'
        assert [e.ordinal for e in events] == sorted(e.ordinal for e in events)

    def test_each_event_carries_the_write_it_names(self, deployment: Deployment) -> None:
        one, two = dataclasses.replace(EXPERIMENT, id="one"), dataclasses.replace(EXPERIMENT, id="two")

        async def body(stores: Stores) -> list[Any]:
            await stores.outbox.ensure_group()
            events = [ChangeEvent("experiment.created", 1), ChangeEvent("experiment.created", 0)]
            await stores.experiments.write([(one, MUST_BE_NEW), (two, MUST_BE_NEW)], events)
            return await stores.outbox.read_events("c", 10)

        first, second = run(deployment, body)
        assert '"id":"two"' in first.experiment and '"id":"one"' in second.experiment


class TestOutbox:
    """Fan-out, claim, complete and the log."""

    def test_round_trip(self, deployment: Deployment) -> None:
        async def body(stores: Stores) -> list[Any]:
            outbox, hooks = stores.outbox, stores.webhooks
            await outbox.ensure_group()
            await outbox.ensure_group()  # idempotent
            assert await hooks.create(HOOK)
            assert not await hooks.create(HOOK)
            entry_id = await outbox.add_test_event(HOOK.id, "{}")
            [event] = await outbox.read_events("c1", 10)
            assert (event.entry_id, event.type, event.target, event.experiment) == (
                entry_id,
                "webhook.test",
                HOOK.id,
                "",
            )
            assert await outbox.read_events("c2", 10) == []  # each entry goes to one consumer
            new = NewDelivery(f"msg_{event.ordinal}_{HOOK.id}", HOOK.id, "evt", event.type, "{}")
            await outbox.fan_out(event, [new], 1_000)
            await outbox.fan_out(event, [new], 1_000)  # a replay creates nothing twice
            assert await outbox.take_over("c3", 0, 10) == []  # acknowledged
            [claimed] = await outbox.claim(1_000, 500, 10, "t1")
            assert await outbox.claim(1_000, 500, 10, "t2") == []  # leased
            assert await outbox.complete(claimed, "t1", "failed", {"attempt": 1}, reason="r", disable_after=1)
            rows = await outbox.deliveries(HOOK.id, 10, "")
            got = await hooks.get(HOOK.id)
            assert await outbox.warn_once("exp", 0, "{}", "{}")
            assert not await outbox.warn_once("exp", 0, "{}", "{}")
            assert await outbox.warn_once("exp", 1, "{}", "{}")
            assert await outbox.warn_once("exp", 1, "{}", "{}", 2)  # each phase its own warning
            assert not await outbox.warn_once("exp", 1, "{}", "{}", 2)
            assert not await outbox.warn_once("exp", 1, "{}", "{}", 0)  # phase 0: the marker of before phases
            assert await hooks.delete(HOOK.id)
            assert not await hooks.delete(HOOK.id)
            return [rows, got, await hooks.all(), await outbox.deliveries(HOOK.id, 10, "")]

        rows, got, remaining, log_after = run(deployment, body)
        [row] = rows
        assert row.state == "failed" and row.attempts == [{"attempt": 1}]
        assert (row.attempt, row.created_ms, row.next_ms, row.event_id) == (1, 1_000, None, "evt")
        assert got is not None and not got.enabled and got.disabled_reason == "r" and got.failed_events == 1
        assert got.events == HOOK.events and got.url == HOOK.url
        assert remaining == [] and log_after == []

    def test_an_unfinished_event_is_taken_over(self, deployment: Deployment) -> None:
        async def body(stores: Stores) -> list[Any]:
            outbox = stores.outbox
            await outbox.ensure_group()
            await outbox.add_test_event(HOOK.id, "{}")
            [given] = await outbox.read_events("dead", 10)
            later = await outbox.take_over("alive", 3_600_000, 10)  # not idle that long
            [taken] = await outbox.take_over("alive", 0, 10)
            await outbox.fan_out(taken, [], 1_000)
            return [given, later, taken, await outbox.take_over("other", 0, 10)]

        given, later, taken, after = run(deployment, body)
        assert later == [] and taken == given and after == []

    def test_a_lease_that_runs_out_is_claimed_again_with_a_lost_attempt(self, deployment: Deployment) -> None:
        async def body(stores: Stores) -> list[Any]:
            outbox = stores.outbox
            await stores.webhooks.create(HOOK)
            await fanned_out(stores, delivery("a"), now_ms=1_000)
            [first] = await outbox.claim(1_000, 500, 10, "t1")
            early = await outbox.claim(1_499, 500, 10, "t2")
            [second] = await outbox.claim(1_500, 500, 10, "t2")
            late = await outbox.complete(first, "t1", "succeeded", {"attempt": 1})  # its lease passed to t2
            done = await outbox.complete(second, "t2", "succeeded", {"attempt": 2, "status": 200})
            [row] = await outbox.deliveries(HOOK.id, 10, "")
            return [first, early, second, late, done, row, await outbox.claim(99_999, 500, 10, "t3")]

        first, early, second, late, done, row, nothing = run(deployment, body)
        assert (first.attempt, second.attempt, first.id) == (1, 2, second.id)
        assert early == [] and nothing == []
        assert late is False and done is True
        assert row.state == "succeeded" and row.attempt == 2
        lost, made = row.attempts
        assert lost["attempt"] == 1 and lost["time_ms"] == 1_500 and lost["status"] == 0 and "lost" in lost["error"]
        assert made == {"attempt": 2, "status": 200}

    def test_a_delivery_not_sent_is_logged_as_dropped_and_never_claimed(self, deployment: Deployment) -> None:
        async def body(stores: Stores) -> list[Any]:
            assert await stores.webhooks.create(HOOK)
            skipped = dataclasses.replace(delivery("a"), payload="", not_sent="not sent: no event for it")
            await fanned_out(stores, skipped, delivery("b"))
            claimed = await stores.outbox.claim(5_000, 500, 10, "t")
            return [claimed, await stores.outbox.deliveries(HOOK.id, 10, "")]

        claimed, log = run(deployment, body)
        assert [c.id for c in claimed] == [delivery("b").id]
        [sent, dropped] = sorted(log, key=lambda r: r.id, reverse=True)
        assert (sent.id, sent.state) == (delivery("b").id, "pending")
        assert (dropped.state, dropped.attempt, dropped.next_ms, dropped.payload) == ("dropped", 0, None, "")
        assert dropped.attempts == [
            {"attempt": 0, "error": "not sent: no event for it", "latency_ms": 0, "status": 0, "time_ms": 1_000}
        ]

    def test_dropped_deliveries_keep_the_log_to_its_limit(self, deployment: Deployment) -> None:
        """A webhook whose format drops most events finishes few attempts: the drops trim the log too."""

        async def body(stores: Stores) -> list[str]:
            assert await stores.webhooks.create(HOOK)
            pending = delivery("0000")  # the oldest, unfinished: never trimmed
            dropped = [
                dataclasses.replace(delivery(f"{i:04}"), payload="", not_sent="not sent") for i in range(1, 1151)
            ]
            await fanned_out(stores, pending, *dropped)
            return [r.id for r in await stores.outbox.deliveries(HOOK.id, 2000, "")]

        log = run(deployment, body)
        assert len(log) == LOG_LIMIT + 1
        assert log[0] == delivery("1150").id and log[-1] == delivery("0000").id
        assert delivery("0150").id not in log and delivery("0151").id in log

    def test_retry_is_due_again_at_its_time(self, deployment: Deployment) -> None:
        async def body(stores: Stores) -> list[Any]:
            outbox = stores.outbox
            await stores.webhooks.create(HOOK)
            await fanned_out(stores, delivery("a"), delivery("b"), now_ms=1_000)
            claimed = await outbox.claim(1_000, 500, 1, "t1")  # limit 1: the lower id first
            [a] = claimed
            assert await outbox.complete(a, "t1", "retry", {"attempt": 1}, next_ms=5_000)
            [row_a] = [r for r in await outbox.deliveries(HOOK.id, 10, "") if r.id == a.id]
            [b] = await outbox.claim(4_999, 500, 10, "t2")
            [again] = await outbox.claim(5_000, 500, 10, "t3")
            return [a, row_a, b, again]

        a, row_a, b, again = run(deployment, body)
        assert a.id == delivery("a").id and b.id == delivery("b").id
        assert row_a.state == "pending" and row_a.next_ms == 5_000 and row_a.attempts == [{"attempt": 1}]
        assert again.id == a.id and again.attempt == 2

    def test_outcomes_change_the_webhook(self, deployment: Deployment) -> None:
        async def body(stores: Stores) -> list[Any]:
            outbox, hooks = stores.outbox, stores.webhooks
            await hooks.create(HOOK)
            await fanned_out(stores, *(delivery(n) for n in "abcde"))
            a, b, c, d, e = await outbox.claim(1_000, 500, 10, "t")
            seen = []
            for claimed, outcome in ((a, "failed"), (b, "failed"), (c, "succeeded"), (d, "failed")):
                await outbox.complete(claimed, "t", outcome, {}, reason="too many", disable_after=3)
                seen.append(await hooks.get(HOOK.id))
            await outbox.complete(e, "t", "gone", {}, reason="410")
            seen.append(await hooks.get(HOOK.id))
            return seen

        after_a, after_b, after_c, after_d, after_e = run(deployment, body)
        assert [h.failed_events for h in (after_a, after_b, after_c, after_d)] == [1, 2, 0, 1]
        assert after_d.enabled and not after_e.enabled and after_e.disabled_reason == "410"

    def test_failures_disable_a_webhook_after_the_limit(self, deployment: Deployment) -> None:
        async def body(stores: Stores) -> list[Any]:
            outbox, hooks = stores.outbox, stores.webhooks
            await hooks.create(HOOK)
            await fanned_out(stores, delivery("a"), delivery("b"))
            a, b = await outbox.claim(1_000, 500, 10, "t")
            await outbox.complete(a, "t", "failed", {}, reason="limit", disable_after=2)
            first = await hooks.get(HOOK.id)
            await outbox.complete(b, "t", "failed", {}, reason="limit", disable_after=2)
            return [first, await hooks.get(HOOK.id), await outbox.deliveries(HOOK.id, 10, "")]

        first, second, rows = run(deployment, body)
        assert first.enabled and not second.enabled and second.disabled_reason == "limit"
        assert [r.state for r in rows] == ["failed", "failed"]

    def test_the_log_pages_newest_first(self, deployment: Deployment) -> None:
        async def body(stores: Stores) -> list[Any]:
            await stores.webhooks.create(HOOK)
            await fanned_out(stores, *(delivery(f"{i}") for i in range(5)), delivery("x", "wh_other"))
            first = await stores.outbox.deliveries(HOOK.id, 2, "")
            rest = await stores.outbox.deliveries(HOOK.id, 10, first[-1].id)
            return [first, rest]

        first, rest = run(deployment, body)
        assert [r.id for r in first + rest] == [delivery(f"{i}").id for i in reversed(range(5))]
        assert len(first) == 2 and all(r.state == "pending" and r.attempt == 0 for r in rest)

    def test_deleting_a_webhook_drops_its_pending_deliveries(self, deployment: Deployment) -> None:
        async def body(stores: Stores) -> list[Any]:
            await stores.webhooks.create(HOOK)
            await fanned_out(stores, delivery("a"), delivery("b", "wh_other"))
            await stores.webhooks.delete(HOOK.id)
            return await stores.outbox.claim(1_000, 500, 10, "t")

        [left] = run(deployment, body)
        assert left.webhook_id == "wh_other"

    def test_one_turn_per_period(self, deployment: Deployment) -> None:
        async def body(stores: Stores) -> list[bool]:
            outbox = stores.outbox
            return [
                await outbox.take_turn("job", 3_600_000),
                await outbox.take_turn("job", 3_600_000),
                await outbox.take_turn("other", 3_600_000),
            ]

        assert run(deployment, body) == [True, False, True]


class TestWebhookWrites:
    def test_a_save_based_on_a_stale_read_writes_nothing(self, deployment: Deployment) -> None:
        """An update racing a secret rotation must not put the old secret back (found in review)."""

        async def body(stores: Stores) -> tuple[Any, Any, Any]:
            hooks = stores.webhooks
            assert await hooks.create(HOOK)
            read = await hooks.get(HOOK.id)
            assert read is not None
            rotated = dataclasses.replace(read, description="rotated meanwhile")
            assert await hooks.save(rotated, set_enabled=False, read=read) is True
            stale = dataclasses.replace(read, url="https://example.com/other")
            outcome = await hooks.save(stale, set_enabled=False, read=read)
            return outcome, await hooks.get(HOOK.id), await hooks.save(stale, set_enabled=False)

        outcome, stored, unconditional = run(deployment, body)
        assert outcome is None
        assert stored.description == "rotated meanwhile" and stored.url == HOOK.url
        assert unconditional is True

    def test_enabling_clears_the_reason_and_failures(self, deployment: Deployment) -> None:
        async def body(stores: Stores) -> list[Any]:
            hooks = stores.webhooks
            other = dataclasses.replace(HOOK, id="wh_b")
            await hooks.create(other)
            await hooks.create(dataclasses.replace(HOOK, enabled=False))
            disabled = await hooks.get(HOOK.id)
            await hooks.save(dataclasses.replace(HOOK, enabled=False, disabled_reason="why"), set_enabled=True)
            why = await hooks.get(HOOK.id)
            kept = await hooks.save(dataclasses.replace(HOOK, enabled=True, disabled_reason="x"), set_enabled=False)
            still = await hooks.get(HOOK.id)
            await hooks.save(HOOK, set_enabled=True)
            gone = await hooks.save(dataclasses.replace(HOOK, id="wh_none"), set_enabled=True)
            return [disabled, why, kept, still, await hooks.get(HOOK.id), gone, await hooks.all()]

        disabled, why, kept, still, enabled, gone, everything = run(deployment, body)
        assert not disabled.enabled and (why.enabled, why.disabled_reason) == (False, "why")
        assert kept is True and (still.enabled, still.disabled_reason) == (False, "why")
        assert enabled.enabled and enabled.disabled_reason == "" and enabled.failed_events == 0
        assert gone is False
        assert [h.id for h in everything] == ["wh_0123456789abcdef", "wh_b"]
