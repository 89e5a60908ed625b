"""The saved group use cases: create, read, change ids (small lists inline, big ones streamed), delete.

Every write is a compare-and-set on the group's revision (its etag) and reaches every
replica through the experiments' change feed; this replica re-reads the group at once,
so a condition evaluated here right after the write already sees it. A group that a
live experiment's condition names cannot be deleted (its participants would silently
become non-members).
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import AsyncIterator, Callable, Sequence

from assignsvc.app.catalog import parse_etag
from assignsvc.app.registry import ExperimentRegistry
from assignsvc.app.shared import check_id, page_of
from assignsvc.core.clock import Clock, wall_clock_ms
from assignsvc.core.conditions import referenced_groups
from assignsvc.core.saved_groups import SavedGroup, group_id_violations, group_violations, ids_violations
from assignsvc.core.scoping import datasource_of, local_part
from assignsvc.errors import (
    AlreadyExistsError,
    ConflictError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
)
from assignsvc.store.protocols import MUST_BE_NEW, SavedGroupStore, WriteConflict


def format_group_etag(group: SavedGroup) -> str:
    """The etag of a stored group: its revision, opaque to clients."""
    return str(group.revision)


class SavedGroupCatalog:
    """Saved groups: writes go to the shared store, reads come from memory."""

    def __init__(
        self,
        registry: ExperimentRegistry,
        store: SavedGroupStore,
        clock: Clock = wall_clock_ms,
        tokens: Callable[[], str] = lambda: secrets.token_hex(12),
    ) -> None:
        self._registry = registry
        self._store = store
        self._clock = clock
        self._tokens = tokens

    async def create(self, group: SavedGroup, ids: Sequence[str]) -> SavedGroup:
        """Store a new group with up to MAX_IDS_PER_MESSAGE ids (stream more with upload)."""
        violations = group_violations(group) + ids_violations(list(ids), "ids")
        if violations:
            raise InvalidArgumentError(violations)
        now = self._clock()
        stored = dataclasses.replace(
            group, name=group.name or local_part(group.id), revision=1, create_time_ms=now, update_time_ms=now
        )
        outcome = await self._store.write(group.id, MUST_BE_NEW, "create", description=stored, add=ids)
        if isinstance(outcome, WriteConflict):
            raise AlreadyExistsError("saved_group", group.id)
        await self._registry.reload_group(group.id)
        return dataclasses.replace(stored, size=outcome)

    def get(self, group_id: str) -> SavedGroup:
        """One group's description from memory; NotFoundError if unknown."""
        check_id(group_id_violations, group_id, "saved_group_id")
        group = self._registry.group_info.get(group_id)
        if group is None:
            raise NotFoundError("saved_group", group_id)
        return group

    def list(self, page_size: int, page_token: str, datasource: str) -> tuple[list[SavedGroup], str]:
        """A page of the datasource's groups ordered by id, and the token for the next ('' at the end)."""
        return page_of(
            sorted(self._registry.group_info.values(), key=lambda g: g.id), page_size, page_token, datasource
        )

    async def update(
        self, group_id: str, etag: str, name: str | None, add: Sequence[str], remove: Sequence[str]
    ) -> SavedGroup:
        """Rename and/or add and remove ids (each list up to MAX_IDS_PER_MESSAGE)."""
        violations = ids_violations(list(add), "add_ids") + ids_violations(list(remove), "remove_ids")
        if violations:
            raise InvalidArgumentError(violations)
        return await self._write(group_id, etag, "update", name=name, add=add, remove=remove)

    async def upload(
        self, group_id: str, etag: str, replace: bool, chunks: AsyncIterator[Sequence[str]]
    ) -> tuple[SavedGroup, int]:
        """Stream any number of ids into a group, then swap them in (replace) or add them, at once.

        Nothing is visible until the last chunk has arrived: an upload cut off half-way
        changes nothing (its staging set expires).
        """
        current = self.get(group_id)
        upload = self._tokens()
        received = 0
        try:
            async for chunk in chunks:
                violations = ids_violations(chunk, "ids")
                if violations:
                    raise InvalidArgumentError(violations)
                await self._store.stage(upload, chunk)
                received += len(chunk)
            group = await self._write(current.id, etag, "replace" if replace else "union", upload=upload)
        except BaseException:
            await self._store.discard(upload)
            raise
        return group, received

    async def delete(self, group_id: str, etag: str) -> None:
        """Delete a group no live experiment's condition names."""
        check_id(group_id_violations, group_id, "saved_group_id")
        # Catch up with every replica's writes first (one GET when nothing changed): an
        # experiment just given a condition naming this group elsewhere must count. What is
        # left is a window of one round trip between this check and the delete.
        await self._registry.refresh()
        datasource, name = datasource_of(group_id), local_part(group_id)
        users = sorted(
            local_part(e.id)
            for e in self._registry.all()
            if datasource_of(e.id) == datasource and name in referenced_groups(e.condition)
        )
        if users:
            raise FailedPreconditionError(
                "SAVED_GROUP_IN_USE",
                f"saved group {name!r} is named by the condition of {', '.join(users)}: change those first",
            )
        expected = parse_etag(etag)
        outcome = await self._store.write(group_id, expected, "delete")
        if isinstance(outcome, WriteConflict):
            raise _conflict(group_id, expected, outcome)
        await self._registry.reload_group(group_id)

    async def _write(
        self,
        group_id: str,
        etag: str,
        op: str,
        *,
        name: str | None = None,
        add: Sequence[str] = (),
        remove: Sequence[str] = (),
        upload: str = "",
    ) -> SavedGroup:
        check_id(group_id_violations, group_id, "saved_group_id")
        expected = parse_etag(etag)
        current = await self._store.get(group_id)
        if current is None:
            raise NotFoundError("saved_group", group_id)
        if expected is not None and current.revision != expected:
            raise _conflict(group_id, expected, WriteConflict(group_id, current.revision))
        changed = dataclasses.replace(
            current,
            name=current.name if name is None else (name or local_part(group_id)),
            revision=current.revision + 1,
            update_time_ms=self._clock(),
        )
        if len(changed.name.encode()) > 256:
            raise InvalidArgumentError(group_violations(changed))
        outcome = await self._store.write(
            group_id, current.revision, op, description=changed, add=add, remove=remove, upload=upload
        )
        if isinstance(outcome, WriteConflict):  # changed between our read and the write
            raise _conflict(group_id, expected if expected is not None else current.revision, outcome)
        await self._registry.reload_group(group_id)
        return dataclasses.replace(changed, size=outcome)


def _conflict(group_id: str, expected: int | None, conflict: WriteConflict) -> NotFoundError | ConflictError:
    if conflict.found < 0:
        return NotFoundError("saved_group", group_id)
    return ConflictError(
        f"saved group {group_id!r} changed since it was read (etag {expected}, now {conflict.found}):"
        " read it again and retry"
    )
