"""AccessManager and KeyRing on the in-memory access store: datasources, keys, scopes,
revocation reaching the ring, last-used times, with no network (the store's contract:
tests/store/contracts/test_access.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import pytest

from assignsvc.app.access import AccessManager, CallerGrant, KeyRing, Refusal
from assignsvc.core.access import Datasource, RateLimit, Scope, key_digest
from assignsvc.errors import AlreadyExistsError, InvalidArgumentError, NotFoundError, StoreUnavailableError
from assignsvc.store.memory import MemoryStores

T = TypeVar("T")
READ_ASSIGN = frozenset({Scope.READ, Scope.ASSIGN})


class World:
    def __init__(self) -> None:
        self.stores = MemoryStores.create()
        self.seconds = 0.0
        self.now_ms = 5_000
        self.ring = KeyRing(self.stores.access, clock=lambda: self.seconds, wall_clock=lambda: self.now_ms)
        self.manager = AccessManager(self.stores.access, self.ring, clock=lambda: self.now_ms)


def run(body: Callable[[World], Coroutine[Any, Any, T]]) -> T:
    return asyncio.run(body(World()))


def test_datasources_are_created_once_and_validated() -> None:
    async def body(world: World) -> None:
        made = await world.manager.create_datasource(Datasource("team-a"))
        assert (made.name, made.create_time_ms) == ("team-a", 5_000)
        with pytest.raises(AlreadyExistsError):
            await world.manager.create_datasource(Datasource("team-a", "again"))
        with pytest.raises(InvalidArgumentError):
            await world.manager.create_datasource(Datasource("Not Valid!"))
        assert await world.manager.datasources() == [made]

    run(body)


def test_a_key_is_admitted_in_its_datasource_with_its_scopes_until_revoked() -> None:
    async def body(world: World) -> None:
        await world.manager.create_datasource(Datasource("team-a"))
        created = await world.manager.create_key("team-a", "reader", READ_ASSIGN, RateLimit())
        assert created.record.digest == key_digest(created.secret) and created.secret not in str(created.record)
        ring = world.ring
        assert isinstance(ring.check("team-a", created.secret, Scope.READ), CallerGrant)
        assert ring.check("team-a", created.secret, Scope.ADMIN) == (Refusal.PERMISSION_DENIED, 0.0)
        assert ring.check("team-b", created.secret, Scope.READ) == (Refusal.UNAUTHENTICATED, 0.0)
        assert ring.check("team-a", "not-a-key", Scope.READ) == (Refusal.MALFORMED, 0.0)
        revoked = await world.manager.revoke_key("team-a", created.record.id)
        assert revoked.revoke_time_ms == 5_000 and not ring.is_live(created.record)
        assert ring.check("team-a", created.secret, Scope.READ) == (Refusal.UNAUTHENTICATED, 0.0)
        assert await world.manager.revoke_key("team-a", created.record.id) == revoked  # twice: no change
        with pytest.raises(NotFoundError):
            await world.manager.revoke_key("team-b", created.record.id)
        with pytest.raises(NotFoundError):
            await world.manager.create_key("team-b", "x", READ_ASSIGN, RateLimit())

    run(body)


def test_another_replica_sees_a_key_after_reloading() -> None:
    async def body(world: World) -> None:
        other = KeyRing(world.stores.access)
        await world.manager.create_datasource(Datasource("team-a"))
        created = await world.manager.create_key("team-a", "k", READ_ASSIGN, RateLimit())
        assert other.check("team-a", created.secret, Scope.READ) == (Refusal.UNAUTHENTICATED, 0.0)
        await other.reload()
        assert isinstance(other.check("team-a", created.secret, Scope.READ), CallerGrant)

    run(body)


def test_rate_limits_refuse_with_a_delay() -> None:
    async def body(world: World) -> None:
        await world.manager.create_datasource(Datasource("team-a"))
        created = await world.manager.create_key("team-a", "k", READ_ASSIGN, RateLimit(1.0, 2))
        results = [world.ring.check("team-a", created.secret, Scope.ASSIGN) for _ in range(3)]
        assert all(isinstance(r, CallerGrant) for r in results[:2])
        refusal, wait = results[2]  # type: ignore[misc]
        assert refusal is Refusal.RATE_LIMITED and wait > 0
        world.seconds += 1.0
        assert isinstance(world.ring.check("team-a", created.secret, Scope.ASSIGN), CallerGrant)

    run(body)


def test_use_is_flushed_as_last_used_and_kept_when_the_store_fails() -> None:
    async def body(world: World) -> None:
        await world.manager.create_datasource(Datasource("team-a"))
        created = await world.manager.create_key("team-a", "k", READ_ASSIGN, RateLimit())
        world.ring.check("team-a", created.secret, Scope.READ)
        world.stores.state.unavailable = True
        with pytest.raises(StoreUnavailableError):
            await world.ring.flush_use()
        world.stores.state.unavailable = False
        world.now_ms = 9_000
        await world.ring.flush_use()
        [(key, used)] = await world.manager.keys("team-a")
        assert key.id == created.record.id and used == 9_000

    run(body)


def test_operator_keys_manage_existing_datasources_only() -> None:
    async def body(world: World) -> None:
        operator = await world.manager.create_operator_key()
        await world.manager.create_datasource(Datasource("team-a"))
        ring = world.ring
        assert isinstance(ring.check("", operator.secret, Scope.OPERATOR), CallerGrant)
        assert isinstance(ring.check("team-a", operator.secret, Scope.ADMIN, operator_may=True), CallerGrant)
        assert ring.check("team-z", operator.secret, Scope.ADMIN, operator_may=True) == (Refusal.UNAUTHENTICATED, 0.0)
        assert ring.check("team-a", operator.secret, Scope.READ) == (Refusal.PERMISSION_DENIED, 0.0)
        assert [k.id for k, _ in await world.manager.keys("")] == [operator.record.id]

    run(body)
