"""ExperimentStore contract: write() is an all-or-nothing compare-and-set on revisions,
archive keeps the id taken, and load_all(), revision() and changes() see every write."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator

from assignsvc.core.model import Arm, Experiment
from assignsvc.store.experiments import SUBSCRIBED
from assignsvc.store.protocols import ARCHIVED, MISSING, MUST_BE_NEW, ChangeNotice, WriteConflict
from tests.store.contracts.harness import DEPLOYMENTS, Deployment, Stores, run

KINDS = DEPLOYMENTS
EXPERIMENT = Experiment(id="exp", name="exp", arms=(Arm("a", "a", 0.5), Arm("b", "b", 0.5)))


def test_write_is_a_compare_and_set_on_the_revision(deployment: Deployment) -> None:
    v1 = dataclasses.replace(EXPERIMENT, revision=1)
    v2 = dataclasses.replace(EXPERIMENT, coverage=0.5, revision=2)

    async def scenario(stores: Stores) -> list[object]:
        store = stores.experiments
        created = await store.write([(v1, MUST_BE_NEW)])
        again = await store.write([(dataclasses.replace(v1, name="other"), MUST_BE_NEW)])
        rev1 = await store.revision()
        stale = await store.write([(v2, 0)])
        updated = await store.write([(v2, 1)])
        revision, everything = await store.load_all()
        return [created, again, rev1, stale, updated, revision, everything, await store.get("missing")]

    created, again, rev1, stale, updated, revision, everything, missing = run(deployment, scenario)
    assert created is None and updated is None
    assert again == WriteConflict("exp", 1) and stale == WriteConflict("exp", 1)
    assert revision == rev1 + 1  # type: ignore[operator]
    assert everything == {"exp": v2}
    assert missing is None


def test_an_unconditional_write_and_put_overwrite(deployment: Deployment) -> None:
    v1 = dataclasses.replace(EXPERIMENT, revision=1)

    async def scenario(stores: Stores) -> list[object]:
        store = stores.experiments
        before = await store.revision()
        await store.write([(dataclasses.replace(v1, revision=5), None)])
        await store.put(dataclasses.replace(v1, name="put", revision=6))
        return [before, await store.revision(), await store.get("exp")]

    before, after, stored = run(deployment, scenario)
    assert before == 0 and after == 2
    assert stored == dataclasses.replace(v1, name="put", revision=6)


def test_a_write_of_many_is_all_or_nothing(deployment: Deployment) -> None:
    one = dataclasses.replace(EXPERIMENT, id="one", revision=1)
    two = dataclasses.replace(EXPERIMENT, id="two", revision=1)

    async def scenario(stores: Stores) -> list[object]:
        store = stores.experiments
        await store.write([(two, MUST_BE_NEW)])
        refused = await store.write([(one, MUST_BE_NEW), (dataclasses.replace(two, revision=2), 5)])
        return [refused, await store.get("one"), await store.get("two"), await store.revision()]

    refused, one_after, two_after, revision = run(deployment, scenario)
    assert refused == WriteConflict("two", 1)
    assert one_after is None and two_after == two
    assert revision == 1  # a refused write bumps nothing


def test_archive_keeps_the_definition_and_the_id(deployment: Deployment) -> None:
    v1 = dataclasses.replace(EXPERIMENT, revision=1)

    async def scenario(stores: Stores) -> list[object]:
        store = stores.experiments
        await store.write([(v1, MUST_BE_NEW)])
        stale = await store.archive("exp", 7)
        archived = await store.archive("exp", 1)
        missing = await store.archive("exp", None)
        reuse = await store.write([(v1, MUST_BE_NEW)])
        _, everything = await store.load_all()
        live, kept = await store.get("exp"), await store.get_archived("exp")
        return [stale, archived, missing, reuse, live, kept, everything, await store.get_archived("never")]

    stale, archived, missing, reuse, live, kept, everything, never = run(deployment, scenario)
    assert stale == WriteConflict("exp", 1) and archived is None
    assert missing == WriteConflict("exp", MISSING) and reuse == WriteConflict("exp", ARCHIVED)
    assert live is None and kept == v1
    assert everything == {} and never is None


def test_changes_are_pushed_with_their_revision(deployment: Deployment) -> None:
    one = dataclasses.replace(EXPERIMENT, id="one", revision=1)
    two = dataclasses.replace(EXPERIMENT, id="two", revision=1)

    async def scenario(stores: Stores) -> list[ChangeNotice]:
        store = stores.experiments
        feed: AsyncIterator[ChangeNotice] = store.changes()
        notices = [await asyncio.wait_for(feed.__anext__(), 5)]  # subscribed
        await store.write([(one, MUST_BE_NEW), (two, MUST_BE_NEW)])
        notices.append(await asyncio.wait_for(feed.__anext__(), 5))
        await store.write([(one, MUST_BE_NEW)])  # refused: no notice
        await store.archive("one", None)
        notices.append(await asyncio.wait_for(feed.__anext__(), 5))
        await store.put(dataclasses.replace(two, revision=2))
        notices.append(await asyncio.wait_for(feed.__anext__(), 5))
        await feed.aclose()  # type: ignore[attr-defined]
        return notices

    subscribed, written, archived, put = run(deployment, scenario)
    assert subscribed == SUBSCRIBED == ChangeNotice(-1, ())
    assert written == ChangeNotice(1, ("one", "two"))  # one write, one notice, one revision
    assert archived == ChangeNotice(2, ("one",))
    assert put == ChangeNotice(3, ("two",))
