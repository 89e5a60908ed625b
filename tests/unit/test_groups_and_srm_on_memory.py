"""SavedGroupCatalog and SrmWatcher on the in-memory stores: groups written, uploaded and
seen by targeting; a sample-ratio mismatch raised once per bucket version; no network
(the stores' contracts: tests/store/contracts)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence

import pytest

from assignsvc.app.catalog import ExperimentCatalog
from assignsvc.app.registry import ExperimentRegistry
from assignsvc.app.saved_groups import SavedGroupCatalog
from assignsvc.app.webhooks.srm import SrmWatcher
from assignsvc.core.model import Arm, Experiment, ExperimentStatus
from assignsvc.core.saved_groups import SavedGroup
from assignsvc.errors import AlreadyExistsError, ConflictError, InvalidArgumentError
from assignsvc.store.memory import MemoryStores
from assignsvc.store.protocols import MUST_BE_NEW

EXPERIMENT = Experiment(
    id="exp", name="exp", arms=(Arm("a", "a", 0.5), Arm("b", "b", 0.5)), status=ExperimentStatus.RUNNING, revision=1
)


async def chunks(*parts: Sequence[str]) -> AsyncIterator[Sequence[str]]:
    for part in parts:
        yield part


def test_groups_are_created_updated_and_uploaded() -> None:
    async def main() -> None:
        stores = MemoryStores.create()
        registry = ExperimentRegistry(stores.experiments, 3600, stores.groups)
        groups = SavedGroupCatalog(registry, stores.groups, lambda: 10, lambda: "upload-1")
        made = await groups.create(SavedGroup("vips", ""), ["a", "b"])
        assert (made.name, made.size, made.revision) == ("vips", 2, 1)
        with pytest.raises(AlreadyExistsError):
            await groups.create(SavedGroup("vips", ""), [])
        assert "a" in registry.groups["vips"] and "c" not in registry.groups["vips"]
        updated = await groups.update("vips", "1", "VIPs", ["c"], ["a"])
        assert (updated.name, updated.size, updated.revision) == ("VIPs", 2, 2)
        with pytest.raises(ConflictError):
            await groups.update("vips", "1", None, ["d"], [])
        uploaded, received = await groups.upload("vips", "2", True, chunks(["x", "y"], ["z"]))
        assert (uploaded.size, received) == (3, 3)
        await registry.reload_group("vips")
        assert "z" in registry.groups["vips"] and "b" not in registry.groups["vips"]
        with pytest.raises(InvalidArgumentError):
            await groups.upload("vips", "3", False, chunks(["ok"], [""]))
        assert (await stores.groups.get("vips")) == uploaded  # nothing swapped in

    asyncio.run(main())


def test_a_sample_ratio_mismatch_is_raised_once_per_bucket_version() -> None:
    async def main() -> None:
        stores = MemoryStores.create()
        await stores.experiments.write([(EXPERIMENT, MUST_BE_NEW)])
        registry = ExperimentRegistry(stores.experiments, 3600, stores.groups)
        await registry.refresh()
        catalog = ExperimentCatalog(registry, stores.experiments, stores.assignments)
        watcher = SrmWatcher(registry, catalog, stores.outbox, threshold=0.001, interval_s=60)
        for i in range(200):
            await stores.assignments.claim(EXPERIMENT, f"p{i}", 0 if i < 150 else 1, 1)
        assert await watcher.check_once() == 1
        assert await watcher.check_once() == 0  # raised already for this bucket version
        await stores.outbox.ensure_group()
        [event] = await stores.outbox.read_events("test", 10)
        warning = json.loads(event.detail)["warning"]
        assert event.type == "experiment.warning" and warning["counts"] == {"a": 150, "b": 50}
        assert json.loads(event.experiment)["id"] == "exp"

    asyncio.run(main())
