"""Preassigner and Exporter on the in-memory rows: balanced stratified uploads that keep
stored arms, and exports that read every row once, filter, and resume, with no network
(the rows' contract: tests/store/contracts/test_rows.py)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Sequence

import pytest

from assignsvc.app.export import ExportChunk, Exporter, ExportFilters
from assignsvc.app.preassign import Preassigner
from assignsvc.app.registry import ExperimentRegistry
from assignsvc.core.model import Arm, Experiment, ExperimentStatus, ExperimentType
from assignsvc.errors import FailedPreconditionError, InvalidArgumentError, NotFoundError
from assignsvc.store.claims import ARM_SLOTS
from assignsvc.store.memory import MemoryStores
from assignsvc.store.protocols import MUST_BE_NEW, ClaimKind

PREASSIGNED = Experiment(
    id="pre",
    name="pre",
    arms=(Arm("a", "a", 0.5), Arm("b", "b", 0.5)),
    type=ExperimentType.PREASSIGNED,
    status=ExperimentStatus.RUNNING,
    storage_shards=8,
    revision=1,
)
ONLINE = dataclasses.replace(PREASSIGNED, id="online", type=ExperimentType.ONLINE)


async def world(*experiments: Experiment) -> tuple[MemoryStores, ExperimentRegistry]:
    stores = MemoryStores.create()
    for experiment in experiments:
        await stores.experiments.write([(experiment, MUST_BE_NEW)])
    registry = ExperimentRegistry(stores.experiments, 3600, stores.groups)
    await registry.refresh()
    return stores, registry


async def upload(
    *groups: tuple[dict[str, str], list[str]],
) -> AsyncIterator[Sequence[tuple[dict[str, str], list[str]]]]:
    for group in groups:
        yield [group]


async def export_all(
    exporter: Exporter, experiment_id: str, filters: ExportFilters, **options: object
) -> list[ExportChunk]:
    return [chunk async for chunk in exporter.export(experiment_id, filters, **options)]  # type: ignore[arg-type]


class TestPreassign:
    def test_uploads_are_balanced_per_stratum_and_keep_stored_arms(self) -> None:
        async def main() -> None:
            stores, registry = await world(PREASSIGNED)
            preassigner = Preassigner(registry, stores.rows, lambda: 7_000)
            de = [f"de{i}" for i in range(40)]
            fr = [f"fr{i}" for i in range(20)]
            first = await preassigner.preassign("pre", upload(({"country": "DE"}, de), ({"country": "FR"}, fr)))
            assert (first.received, first.created, first.already_assigned) == (60, 60, 0)
            assert [(t.stratum, t.counts) for t in first.strata] == [
                ('{"country":"DE"}', [20, 20]),
                ('{"country":"FR"}', [10, 10]),
            ]
            before = {p: await stores.assignments.lookup(PREASSIGNED, p) for p in de}
            second = await preassigner.preassign("pre", upload(({"country": "DE"}, [*de[:10], "de-new"])))
            assert (second.received, second.created, second.already_assigned) == (11, 1, 10)
            assert [sum(t.counts) for t in second.strata] == [41]
            for participant, claim in before.items():  # nobody moved
                assert claim.kind is ClaimKind.EXISTING and claim.first_seen_ms == 7_000
                assert await stores.assignments.lookup(PREASSIGNED, participant) == claim
            assert sum(await stores.assignments.arm_counts(PREASSIGNED, 0)) == 61

        asyncio.run(main())

    def test_a_draw_is_reproducible(self) -> None:
        async def arms() -> dict[str, int]:
            stores, registry = await world(PREASSIGNED)
            ids = [f"p{i}" for i in range(50)]
            await Preassigner(registry, stores.rows, lambda: 1).preassign("pre", upload(({}, ids)))
            return {p: (await stores.assignments.lookup(PREASSIGNED, p)).arm_index for p in ids}

        first, second = asyncio.run(arms()), asyncio.run(arms())
        assert first == second and sorted(first.values()).count(0) == 25

    def test_refusals(self) -> None:
        async def main() -> None:
            stopped = dataclasses.replace(PREASSIGNED, id="stopped", status=ExperimentStatus.STOPPED)
            stores, registry = await world(PREASSIGNED, ONLINE, stopped)
            preassigner = Preassigner(registry, stores.rows)
            with pytest.raises(FailedPreconditionError, match="online"):
                await preassigner.preassign("online", upload(({}, ["x"])))
            with pytest.raises(FailedPreconditionError, match="stopped"):
                await preassigner.preassign("stopped", upload(({}, ["x"])))
            with pytest.raises(NotFoundError):
                await preassigner.preassign("none", upload(({}, ["x"])))
            with pytest.raises(InvalidArgumentError) as caught:
                await preassigner.preassign("pre", upload(({}, ["ok", ""])))
            assert [v.field for v in caught.value.violations] == ["participants[1].participant_id"]
            assert await stores.rows.stratum_counts(PREASSIGNED, 0) == {}  # nothing written

        asyncio.run(main())


class TestExport:
    def test_every_row_once_in_chunks_and_resumed(self) -> None:
        async def main() -> None:
            stores, registry = await world(ONLINE)
            for i in range(25):
                await stores.assignments.claim(ONLINE, f"p{i:02d}", i % 2, 1_000 + i)
            exporter = Exporter(registry, stores.experiments, stores.rows, lambda: 5_000)
            chunks = await export_all(exporter, "online", ExportFilters(), chunk_size=10)
            rows = [row for chunk in chunks for row in chunk.rows]
            assert sorted(r[0] for r in rows) == sorted(f"p{i:02d}".encode() for i in range(25))
            assert all(len(c.rows) <= 10 for c in chunks) and all(c.resume_token for c in chunks)
            by_id = {r[0]: r[1] for r in rows}
            assert by_id[b"p03"] == 1_003 * ARM_SLOTS + 1
            resumed = await export_all(exporter, "online", ExportFilters(), token=chunks[0].resume_token)
            assert [r for c in resumed for r in c.rows] == rows[len(chunks[0].rows) :]
            with pytest.raises(InvalidArgumentError):
                await export_all(exporter, "online", ExportFilters(arm_id="b"), token=chunks[0].resume_token)

        asyncio.run(main())

    def test_filters_and_archived_experiments(self) -> None:
        async def main() -> None:
            stores, registry = await world(ONLINE)
            for i in range(10):
                await stores.assignments.claim(ONLINE, f"p{i}", i % 2, 1_000 + i)
            exporter = Exporter(registry, stores.experiments, stores.rows, lambda: 5_000)
            b_only = await export_all(exporter, "online", ExportFilters(arm_id="b", first_seen_since_ms=1_005))
            assert sorted(r[0] for c in b_only for r in c.rows) == [b"p5", b"p7", b"p9"]
            await stores.experiments.archive("online", None)
            registry.remove("online")
            archived = await export_all(exporter, "online", ExportFilters())
            assert len([r for c in archived for r in c.rows]) == 10
            with pytest.raises(InvalidArgumentError):
                await export_all(exporter, "online", ExportFilters(arm_id="nope"))
            with pytest.raises(NotFoundError):
                await export_all(exporter, "never", ExportFilters())

        asyncio.run(main())

    def test_preassigned_rows_carry_their_stratum(self) -> None:
        async def main() -> None:
            stores, registry = await world(PREASSIGNED)
            await Preassigner(registry, stores.rows, lambda: 1).preassign(
                "pre", upload(({"country": "DE"}, ["a1", "a2"]), ({}, ["b1"]))
            )
            exporter = Exporter(registry, stores.experiments, stores.rows, lambda: 5_000)
            rows = [r for c in await export_all(exporter, "pre", ExportFilters()) for r in c.rows]
            assert sorted((r[0], r[3]) for r in rows) == [
                (b"a1", '{"country":"DE"}'),
                (b"a2", '{"country":"DE"}'),
                (b"b1", ""),
            ]

        asyncio.run(main())
