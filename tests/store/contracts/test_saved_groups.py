"""SavedGroupStore contract: each write is one compare-and-set on the group's revision,
staged uploads are swapped in or merged by the last write, and every write is announced
on the experiments' change feed."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from typing import Any

from assignsvc.core.saved_groups import SavedGroup
from assignsvc.store.protocols import MISSING, MUST_BE_NEW, ChangeNotice, WriteConflict
from assignsvc.store.saved_groups import SCAN_BATCH
from tests.store.contracts.harness import DEPLOYMENTS, Deployment, Stores, run

KINDS = DEPLOYMENTS
GROUP = SavedGroup(id="ds/vips", name="VIPs", revision=1, create_time_ms=5, update_time_ms=5)


async def members(stores: Stores, group_id: str) -> tuple[set[bytes], int]:
    """The group's ids and how many batches carried them."""
    found: set[bytes] = set()
    batches = 0
    async for batch in stores.groups.ids(group_id):
        found.update(batch)
        batches += 1
    return found, batches


def test_writes_are_compare_and_set_on_the_revision(deployment: Deployment) -> None:
    v2 = dataclasses.replace(GROUP, revision=2, update_time_ms=9)

    async def scenario(stores: Stores) -> list[Any]:
        groups = stores.groups
        created = await groups.write(GROUP.id, MUST_BE_NEW, "create", description=GROUP, add=["a", "b", "c"])
        again = await groups.write(GROUP.id, MUST_BE_NEW, "create", description=GROUP, add=["x"])
        stale = await groups.write(GROUP.id, 7, "update", description=v2, add=["d"])
        unknown = await groups.write("ds/none", None, "update", description=GROUP, add=["d"])
        updated = await groups.write(GROUP.id, 1, "update", description=v2, add=["d"], remove=["a", "zz"])
        ids, _ = await members(stores, GROUP.id)
        return [created, again, stale, unknown, updated, ids, await groups.get(GROUP.id), await groups.load_all()]

    created, again, stale, unknown, updated, ids, stored, everything = run(deployment, scenario)
    assert created == 3 and updated == 3
    assert again == WriteConflict(GROUP.id, 1) and stale == WriteConflict(GROUP.id, 1)
    assert unknown == WriteConflict("ds/none", MISSING)
    assert ids == {b"b", b"c", b"d"}
    assert stored == dataclasses.replace(v2, size=3)  # the size is the set's
    assert everything == {GROUP.id: stored}


def test_delete_removes_the_description_and_the_ids(deployment: Deployment) -> None:
    async def scenario(stores: Stores) -> list[Any]:
        groups = stores.groups
        await groups.write(GROUP.id, MUST_BE_NEW, "create", description=GROUP, add=["a"])
        stale = await groups.write(GROUP.id, 3, "delete")
        deleted = await groups.write(GROUP.id, 1, "delete")
        again = await groups.write(GROUP.id, None, "delete")
        ids, batches = await members(stores, GROUP.id)
        return [stale, deleted, again, await groups.get(GROUP.id), ids, batches]

    stale, deleted, again, stored, ids, batches = run(deployment, scenario)
    assert stale == WriteConflict(GROUP.id, 1) and deleted == 0
    assert again == WriteConflict(GROUP.id, MISSING)
    assert stored is None and ids == set() and batches == 1  # one empty batch


def test_a_staged_upload_replaces_or_joins_the_ids(deployment: Deployment) -> None:
    big = [f"id{i:06d}" for i in range(SCAN_BATCH + 5)]

    async def scenario(stores: Stores) -> list[Any]:
        groups = stores.groups
        await groups.write(GROUP.id, MUST_BE_NEW, "create", description=GROUP, add=["old"])
        await groups.stage("u1", big[:7000])
        await groups.stage("u1", big[7000:])
        await groups.stage("u1", [])
        replaced = await groups.write(GROUP.id, 1, "replace", description=GROUP, upload="u1", add=["extra"])
        after_replace = await members(stores, GROUP.id)
        await groups.stage("u2", ["new1", "new2"])
        joined = await groups.write(GROUP.id, 1, "union", description=GROUP, upload="u2")
        await groups.stage("u3", ["dropped"])
        await groups.discard("u3")
        discarded = await groups.write(GROUP.id, 1, "union", description=GROUP, upload="u3")
        after_all, _ = await members(stores, GROUP.id)
        return [replaced, after_replace, joined, discarded, after_all]

    replaced, (ids, batches), joined, discarded, after_all = run(deployment, scenario)
    assert replaced == len(big) + 1
    assert ids == {p.encode() for p in [*big, "extra"]} and batches >= 1
    assert joined == len(big) + 3 and discarded == joined
    assert b"new1" in after_all and b"old" not in after_all and b"dropped" not in after_all


def test_every_write_is_announced_on_the_change_feed(deployment: Deployment) -> None:
    async def scenario(stores: Stores) -> list[ChangeNotice]:
        feed: AsyncIterator[ChangeNotice] = stores.experiments.changes()
        notices = [await asyncio.wait_for(feed.__anext__(), 5)]
        await stores.groups.write(GROUP.id, MUST_BE_NEW, "create", description=GROUP)
        notices.append(await asyncio.wait_for(feed.__anext__(), 5))
        await stores.groups.write(GROUP.id, 5, "delete")  # refused: no notice
        await stores.groups.write(GROUP.id, 1, "delete")
        notices.append(await asyncio.wait_for(feed.__anext__(), 5))
        await feed.aclose()  # type: ignore[attr-defined]
        notices.append(ChangeNotice(await stores.experiments.revision(), ()))
        return notices

    _, created, deleted, revision = run(deployment, scenario)
    assert created == ChangeNotice(1, ("group:ds/vips",)) and deleted == ChangeNotice(2, ("group:ds/vips",))
    assert revision.revision == 2  # the experiments' revision counter
