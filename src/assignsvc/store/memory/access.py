"""Datasources and API key records in memory (see store.access); writes announce on the shared feed."""

from __future__ import annotations

from assignsvc.core.access import ApiKey, Datasource
from assignsvc.store.access import ACCESS_NOTICE, key_from_json, key_to_json
from assignsvc.store.memory.shared import SharedState


class MemoryAccessStore:
    """AccessStore in memory; key records are kept as the Redis store keeps them (JSON)."""

    def __init__(self, state: SharedState) -> None:
        self._state = state
        self._datasources: dict[str, Datasource] = {}
        self._keys: dict[str, str] = {}
        self._used: dict[str, int] = {}

    async def create_datasource(self, datasource: Datasource) -> bool:
        """See AccessStore.create_datasource."""
        self._state.check("write access record")
        if datasource.id in self._datasources:
            return False
        self._datasources[datasource.id] = datasource
        self._state.publish(ACCESS_NOTICE)
        return True

    async def datasources(self) -> list[Datasource]:
        """See AccessStore.datasources."""
        self._state.check("read datasources")
        return [self._datasources[i] for i in sorted(self._datasources)]

    async def create_key(self, key: ApiKey) -> bool:
        """See AccessStore.create_key."""
        return self._put(key, present=False)

    async def save_key(self, key: ApiKey) -> bool:
        """See AccessStore.save_key."""
        return self._put(key, present=True)

    def _put(self, key: ApiKey, present: bool) -> bool:
        self._state.check("write access record")
        if (key.id in self._keys) != present:
            return False
        self._keys[key.id] = key_to_json(key)
        self._state.publish(ACCESS_NOTICE)
        return True

    async def keys(self) -> list[ApiKey]:
        """See AccessStore.keys."""
        self._state.check("read API keys")
        return [key_from_json(self._keys[i]) for i in sorted(self._keys)]

    async def record_use(self, used_ms: dict[str, int]) -> None:
        """See AccessStore.record_use."""
        self._state.check("record API key use")
        for key_id, ms in used_ms.items():
            self._used[key_id] = max(ms, self._used.get(key_id, ms))

    async def last_used(self) -> dict[str, int]:
        """See AccessStore.last_used."""
        self._state.check("read API key use")
        return dict(self._used)
