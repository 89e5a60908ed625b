"""ExperimentCatalog and ExperimentApplier on the in-memory stores: create, update with
etags, conflicts, list paging, archive, arms locked by stored rows, and the events each
write records, with no network (the stores' contracts: tests/store/contracts)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import pytest

from assignsvc.app.apply import ApplyAction, Desired, ExperimentApplier
from assignsvc.app.catalog import ExperimentCatalog
from assignsvc.app.registry import ExperimentRegistry
from assignsvc.core.lifecycle import Action
from assignsvc.core.model import Arm, Experiment, ExperimentStatus
from assignsvc.errors import (
    AlreadyExistsError,
    ConflictError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
)
from assignsvc.store.memory import MemoryStores

T = TypeVar("T")
EXPERIMENT = Experiment(id="exp", name="exp", arms=(Arm("a", "a", 0.5), Arm("b", "b", 0.5)))


class World:
    """A catalog, its registry and applier over one set of in-memory stores."""

    def __init__(self) -> None:
        self.stores = MemoryStores.create()
        self.registry = ExperimentRegistry(self.stores.experiments, 3600, self.stores.groups)
        self.catalog = ExperimentCatalog(
            self.registry, self.stores.experiments, self.stores.assignments, lambda: 1_000, lambda: "seed2"
        )
        self.applier = ExperimentApplier(self.catalog, self.registry, self.stores.experiments, self.stores.assignments)

    async def event_types(self) -> list[str]:
        await self.stores.outbox.ensure_group()
        return [e.type for e in await self.stores.outbox.read_events("test", 100)]


def run(body: Callable[[World], Coroutine[Any, Any, T]]) -> T:
    return asyncio.run(body(World()))


class TestCreateAndUpdate:
    def test_create_stamps_and_stores_once(self) -> None:
        async def body(world: World) -> None:
            created = await world.catalog.create(EXPERIMENT)
            assert (created.revision, created.create_time_ms, created.status) == (1, 1_000, ExperimentStatus.DRAFT)
            assert await world.stores.experiments.get("exp") == created
            assert world.catalog.get("exp") == created
            with pytest.raises(AlreadyExistsError):
                await world.catalog.create(EXPERIMENT)
            assert await world.event_types() == ["experiment.created"]

        run(body)

    def test_update_checks_the_etag(self) -> None:
        async def body(world: World) -> None:
            await world.catalog.create(EXPERIMENT)
            renamed = await world.catalog.update(dataclasses.replace(EXPERIMENT, name="renamed"), ["name"], "1")
            assert (renamed.name, renamed.revision) == ("renamed", 2)
            with pytest.raises(ConflictError, match="etag 1, now 2"):
                await world.catalog.update(dataclasses.replace(EXPERIMENT, name="stale"), ["name"], "1")
            unconditional = await world.catalog.update(dataclasses.replace(EXPERIMENT, coverage=0.5), ["coverage"], "")
            assert (unconditional.coverage, unconditional.name, unconditional.revision) == (0.5, "renamed", 3)
            with pytest.raises(NotFoundError):
                await world.catalog.update(dataclasses.replace(EXPERIMENT, id="none"), ["name"], "")
            with pytest.raises(InvalidArgumentError):
                await world.catalog.update(EXPERIMENT, ["name"], "not-an-etag")
            assert await world.stores.experiments.get("exp") == unconditional

        run(body)

    def test_a_write_elsewhere_between_read_and_write_is_a_conflict(self) -> None:
        """The store's compare-and-set, not the catalog's read, decides."""

        async def body(world: World) -> None:
            await world.catalog.create(EXPERIMENT)
            real_get = world.stores.experiments.get

            async def get_then_race(experiment_id: str) -> Experiment | None:
                found = await real_get(experiment_id)
                assert found is not None
                await world.stores.experiments.put(
                    dataclasses.replace(found, name="raced", revision=found.revision + 1)
                )
                return found

            world.stores.experiments.get = get_then_race  # type: ignore[method-assign]
            with pytest.raises(ConflictError, match="etag 1, now 2"):
                await world.catalog.update(dataclasses.replace(EXPERIMENT, name="mine"), ["name"], "1")
            world.stores.experiments.get = real_get  # type: ignore[method-assign]
            stored = await world.stores.experiments.get("exp")
            assert stored is not None and stored.name == "raced"

        run(body)

    def test_arms_are_locked_once_a_row_is_stored(self) -> None:
        async def body(world: World) -> None:
            created = await world.catalog.create(EXPERIMENT)
            three = (*EXPERIMENT.arms, Arm("c", "c", 0.0))
            await world.catalog.update(dataclasses.replace(EXPERIMENT, arms=three), ["arms"], "1")  # no rows yet
            await world.stores.assignments.claim(created, "alice", 0, 5)
            with pytest.raises(FailedPreconditionError, match="stored assignments"):
                await world.catalog.update(dataclasses.replace(EXPERIMENT, arms=EXPERIMENT.arms), ["arms"], "2")

        run(body)

    def test_status_changes_and_archive(self) -> None:
        async def body(world: World) -> None:
            await world.catalog.create(EXPERIMENT)
            started = await world.catalog.change_status("exp", Action.START, "1")
            assert started.status is ExperimentStatus.RUNNING
            with pytest.raises(ConflictError):
                await world.catalog.delete("exp", "1")
            await world.catalog.delete("exp", "2")
            with pytest.raises(NotFoundError):
                world.catalog.get("exp")
            with pytest.raises(NotFoundError):
                await world.catalog.delete("exp", "")
            with pytest.raises(AlreadyExistsError, match="never reused"):
                await world.catalog.create(EXPERIMENT)
            assert (await world.stores.experiments.get_archived("exp")) == started
            types = await world.event_types()
            assert types[0] == "experiment.created" and types[-1] == "experiment.deleted"

        run(body)


class TestListAndStats:
    def test_list_pages_by_id_within_the_datasource(self) -> None:
        async def body(world: World) -> None:
            for name in ["e3", "e1", "e2", "ds2/e0"]:
                await world.catalog.create(dataclasses.replace(EXPERIMENT, id=name, name=name))
            first, token = world.catalog.list(2, "", "default")
            second, last = world.catalog.list(2, token, "default")
            other, _ = world.catalog.list(10, "", "ds2")
            assert [e.id for e in first] == ["e1", "e2"] and token
            assert [e.id for e in second] == ["e3"] and last == ""
            assert [e.id for e in other] == ["ds2/e0"]
            with pytest.raises(InvalidArgumentError):
                world.catalog.list(-1, "", "default")

        run(body)

    def test_stats_count_the_stored_rows(self) -> None:
        async def body(world: World) -> None:
            created = await world.catalog.create(EXPERIMENT)
            for i in range(30):
                await world.stores.assignments.claim(created, f"p{i}", int(i < 10), 5)
            stats = await world.catalog.stats("exp", None)
            assert stats.counts == [20, 10]
            with pytest.raises(InvalidArgumentError):
                await world.catalog.stats("exp", 1)

        run(body)


class TestApply:
    def test_apply_creates_updates_and_leaves_unchanged(self) -> None:
        async def body(world: World) -> None:
            one, two = dataclasses.replace(EXPERIMENT, id="one"), dataclasses.replace(EXPERIMENT, id="two")
            dry = await world.applier.apply([Desired(one, None)], dry_run=True)
            assert [o.action for o in dry] == [ApplyAction.CREATED]
            assert await world.stores.experiments.get("one") is None
            first = await world.applier.apply(
                [Desired(one, None), Desired(two, ExperimentStatus.RUNNING)], dry_run=False
            )
            assert [o.action for o in first] == [ApplyAction.CREATED, ApplyAction.CREATED]
            again = await world.applier.apply(
                [Desired(dataclasses.replace(one, name="renamed"), None), Desired(two, None)], dry_run=False
            )
            assert [o.action for o in again] == [ApplyAction.UPDATED, ApplyAction.UNCHANGED]
            stored = await world.stores.experiments.get("one")
            assert stored is not None and (stored.name, stored.revision) == ("renamed", 2)
            assert world.registry.get("one") is not None
            assert (await world.event_types())[:2] == ["experiment.created", "experiment.created"]

        run(body)

    def test_apply_is_all_or_nothing_when_the_store_refuses(self) -> None:
        async def body(world: World) -> None:
            one, two = dataclasses.replace(EXPERIMENT, id="one"), dataclasses.replace(EXPERIMENT, id="two")
            real_write = world.stores.experiments.write

            async def write_after_a_race(writes, events=()):  # type: ignore[no-untyped-def]
                await world.stores.experiments.put(dataclasses.replace(two, revision=1))  # someone else created two
                return await real_write(writes, events)

            world.stores.experiments.write = write_after_a_race  # type: ignore[method-assign]
            with pytest.raises(ConflictError, match="nothing was written"):
                await world.applier.apply([Desired(one, None), Desired(two, None)], dry_run=False)
            assert await world.stores.experiments.get("one") is None

        run(body)
