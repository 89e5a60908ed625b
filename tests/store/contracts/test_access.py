"""AccessStore contract: create-only and replace-only writes, ordered reads, last-used
times that only move forward, and every write announced on the change feed."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from typing import Any

from assignsvc.core.access import ApiKey, Datasource, RateLimit, Scope
from assignsvc.store.access import ACCESS_NOTICE
from assignsvc.store.protocols import ChangeNotice
from tests.store.contracts.harness import DEPLOYMENTS, Deployment, Stores, run

KINDS = DEPLOYMENTS
KEY = ApiKey(
    id="k2",
    datasource="ds",
    digest="d" * 64,
    scopes=frozenset({Scope.READ, Scope.ASSIGN}),
    name="reader",
    hint="ask_ab",
    rate_limit=RateLimit(12.5, 30),
    create_time_ms=7,
)


def test_records_are_created_once_and_replaced_only_if_present(deployment: Deployment) -> None:
    async def body(stores: Stores) -> list[Any]:
        access = stores.access
        made = [
            await access.create_datasource(Datasource("b", "Bee", 3)),
            await access.create_datasource(Datasource("a")),
            await access.create_datasource(Datasource("b", "again")),
            await access.create_key(KEY),
            await access.create_key(dataclasses.replace(KEY, id="k1", scopes=frozenset({Scope.OPERATOR}))),
            await access.create_key(dataclasses.replace(KEY, name="dup")),
            await access.save_key(dataclasses.replace(KEY, revoke_time_ms=99)),
            await access.save_key(dataclasses.replace(KEY, id="k9")),
        ]
        return [made, await access.datasources(), await access.keys()]

    made, datasources, keys = run(deployment, body)
    assert made == [True, True, False, True, True, False, True, False]
    assert datasources == [Datasource("a"), Datasource("b", "Bee", 3)]
    assert [k.id for k in keys] == ["k1", "k2"]
    assert keys[1] == dataclasses.replace(KEY, revoke_time_ms=99)  # every field kept
    assert keys[0].scopes == frozenset({Scope.OPERATOR})


def test_last_used_keeps_the_latest_time(deployment: Deployment) -> None:
    async def body(stores: Stores) -> list[dict[str, int]]:
        access = stores.access
        before = await access.last_used()
        await access.record_use({})
        await access.record_use({"k1": 100, "k2": 50})
        await access.record_use({"k1": 90, "k2": 60})
        return [before, await access.last_used()]

    assert run(deployment, body) == [{}, {"k1": 100, "k2": 60}]


def test_every_write_is_announced_and_refusals_are_not(deployment: Deployment) -> None:
    async def body(stores: Stores) -> list[ChangeNotice]:
        feed: AsyncIterator[ChangeNotice] = stores.experiments.changes()
        await asyncio.wait_for(feed.__anext__(), 5)
        await stores.access.create_datasource(Datasource("a"))
        await stores.access.create_datasource(Datasource("a"))  # refused
        await stores.access.create_key(KEY)
        notices = [await asyncio.wait_for(feed.__anext__(), 5) for _ in range(2)]
        await feed.aclose()  # type: ignore[attr-defined]
        return [*notices, ChangeNotice(await stores.experiments.revision(), ())]

    first, second, revision = run(deployment, body)
    assert first == ChangeNotice(1, (ACCESS_NOTICE,)) and second == ChangeNotice(2, (ACCESS_NOTICE,))
    assert revision.revision == 2
