"""Experiment definitions and saved groups in memory, with the shared change feed.

Definitions are kept as the JSON the Redis store keeps (store.codec), so what comes
back, and what events carry, is exactly what a Redis round trip gives. Each method
runs without an await: one atomic step, as each Redis script is.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from assignsvc.core.model import Experiment
from assignsvc.core.saved_groups import SavedGroup
from assignsvc.store.codec import experiment_from_json, experiment_to_json
from assignsvc.store.memory.shared import SharedState
from assignsvc.store.protocols import ARCHIVED, MISSING, MUST_BE_NEW, ChangeEvent, ChangeNotice, Expected, WriteConflict
from assignsvc.store.saved_groups import NOTICE_PREFIX, SCAN_BATCH


class MemoryExperimentStore:
    """ExperimentStore in memory (see RedisExperimentStore's write and archive scripts)."""

    def __init__(self, state: SharedState) -> None:
        self._state = state
        self._live: dict[str, str] = {}  # id -> stored JSON
        self._archived: dict[str, str] = {}

    def _found(self, experiment_id: str) -> int:
        raw = self._live.get(experiment_id)
        if raw is not None:
            return experiment_from_json(raw).revision
        return ARCHIVED if experiment_id in self._archived else MISSING

    async def write(
        self, writes: Sequence[tuple[Experiment, Expected]], events: Sequence[ChangeEvent] = ()
    ) -> WriteConflict | None:
        """See ExperimentStore.write."""
        self._state.check("write experiments")
        for experiment, expected in writes:
            if expected is not None:
                found = self._found(experiment.id)
                if not ((expected == MUST_BE_NEW and found == MISSING) or expected == found):
                    return WriteConflict(experiment.id, found)
        stored = [experiment_to_json(experiment) for experiment, _ in writes]
        for (experiment, _), raw in zip(writes, stored, strict=True):
            self._live[experiment.id] = raw
        for event in events:
            self._state.events.append(event.type, stored[event.write_index], event.detail)
        self._state.publish(*(experiment.id for experiment, _ in writes))
        return None

    async def archive(self, experiment_id: str, expected: int | None) -> WriteConflict | None:
        """See ExperimentStore.archive."""
        self._state.check("archive experiment")
        raw = self._live.get(experiment_id)
        if raw is None:
            return WriteConflict(experiment_id, MISSING)
        found = experiment_from_json(raw).revision
        if expected is not None and expected != found:
            return WriteConflict(experiment_id, found)
        self._archived[experiment_id] = self._live.pop(experiment_id)
        self._state.events.append("experiment.deleted", raw, "{}")
        self._state.publish(experiment_id)
        return None

    async def put(self, experiment: Experiment) -> None:
        """See ExperimentStore.put."""
        self._state.check("put experiment")
        self._live[experiment.id] = experiment_to_json(experiment)
        self._state.publish(experiment.id)

    async def get(self, experiment_id: str) -> Experiment | None:
        """See ExperimentStore.get."""
        self._state.check("get experiment")
        raw = self._live.get(experiment_id)
        return None if raw is None else experiment_from_json(raw)

    async def get_archived(self, experiment_id: str) -> Experiment | None:
        """See ExperimentStore.get_archived."""
        self._state.check("get archived experiment")
        raw = self._archived.get(experiment_id)
        return None if raw is None else experiment_from_json(raw)

    async def load_all(self) -> tuple[int, dict[str, Experiment]]:
        """See ExperimentStore.load_all."""
        self._state.check("load experiments")
        return self._state.revision, {i: experiment_from_json(raw) for i, raw in self._live.items()}

    async def revision(self) -> int:
        """See ExperimentStore.revision."""
        self._state.check("read revision")
        return self._state.revision

    def changes(self) -> AsyncIterator[ChangeNotice]:
        """See ExperimentStore.changes."""
        return self._state.changes("subscribe to experiment changes")


class MemorySavedGroupStore:
    """SavedGroupStore in memory (see RedisSavedGroupStore's write script); uploads never expire."""

    def __init__(self, state: SharedState) -> None:
        self._state = state
        self._groups: dict[str, SavedGroup] = {}
        self._ids: dict[str, set[str]] = {}
        self._uploads: dict[str, set[str]] = {}

    async def write(
        self,
        group_id: str,
        expected: int | str | None,
        op: str,
        *,
        description: SavedGroup | None = None,
        add: Sequence[str] = (),
        remove: Sequence[str] = (),
        upload: str = "",
    ) -> WriteConflict | int:
        """See SavedGroupStore.write."""
        self._state.check("write saved group")
        held = self._groups.get(group_id)
        found = MISSING if held is None else held.revision
        if expected is None:
            if found == MISSING:
                return WriteConflict(group_id, MISSING)
        elif not ((expected == MUST_BE_NEW and found == MISSING) or expected == found):
            return WriteConflict(group_id, found)
        size = 0
        if op == "delete":
            self._groups.pop(group_id, None)
            self._ids.pop(group_id, None)
        else:
            if description is None:
                raise ValueError(f"a {op} of saved group {group_id!r} needs its description")
            ids = set() if op in ("create", "replace") else self._ids.get(group_id, set())
            staged = self._uploads.pop(upload or "none", None)
            if staged is not None and op == "replace":
                ids = staged
            elif staged is not None and op == "union":
                ids |= staged
            elif staged is not None:
                self._uploads[upload or "none"] = staged  # left for its own replace or union
            ids.update(add)
            ids.difference_update(remove)
            self._ids[group_id] = ids
            size = len(ids)
            self._groups[group_id] = SavedGroup(
                description.id,
                description.name,
                size,
                description.revision,
                description.create_time_ms,
                description.update_time_ms,
            )
        self._state.publish(NOTICE_PREFIX + group_id)
        return size

    async def stage(self, upload: str, ids: Sequence[str]) -> None:
        """See SavedGroupStore.stage."""
        self._state.check("stage saved group ids")
        if ids:
            self._uploads.setdefault(upload, set()).update(ids)

    async def discard(self, upload: str) -> None:
        """See SavedGroupStore.discard."""
        self._state.check("discard upload")
        self._uploads.pop(upload, None)

    async def get(self, group_id: str) -> SavedGroup | None:
        """See SavedGroupStore.get."""
        self._state.check("get saved group")
        return self._groups.get(group_id)

    async def load_all(self) -> dict[str, SavedGroup]:
        """See SavedGroupStore.load_all."""
        self._state.check("load saved groups")
        return dict(self._groups)

    async def ids(self, group_id: str) -> AsyncIterator[list[bytes]]:
        """See SavedGroupStore.ids (one empty batch for an empty or unknown group, as SSCAN)."""
        self._state.check("read saved group ids")
        members = sorted(self._ids.get(group_id, ()))
        for start in range(0, max(len(members), 1), SCAN_BATCH):
            yield [member.encode() for member in members[start : start + SCAN_BATCH]]
