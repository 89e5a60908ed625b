"""The in-process experiment registry: every experiment compiled and held in memory.

The Assign path reads only this dict. It is kept in step with Redis by the change
channel (milliseconds: each message carries the write's revision and the ids it
changed, and only those are read) and by a periodic revision check, which reloads
everything only when the revision moved past what the messages delivered (a missed
message or a reconnect costs at most one refresh interval).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from array import array
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from assignsvc.core.bucketing import BucketPlan
from assignsvc.core.conditions import GroupMembers
from assignsvc.core.model import Experiment
from assignsvc.core.saved_groups import MemberSet, SavedGroup, member_hashes
from assignsvc.core.targeting import TargetingPlan
from assignsvc.errors import StoreUnavailableError
from assignsvc.store.access import ACCESS_NOTICE
from assignsvc.store.protocols import ChangeNotice, ExperimentStore, SavedGroupStore
from assignsvc.store.saved_groups import NOTICE_PREFIX

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LiveExperiment:
    """An experiment with its bucketing and targeting plans compiled once."""

    experiment: Experiment
    plan: BucketPlan
    targeting: TargetingPlan

    @classmethod
    def of(cls, experiment: Experiment) -> LiveExperiment:
        """Compile the plans for an experiment."""
        return cls(experiment, BucketPlan.compile(experiment), TargetingPlan.compile(experiment))


class ExperimentRegistry:
    """Experiments by id, in memory, synchronised from an ExperimentStore."""

    def __init__(
        self,
        store: ExperimentStore,
        refresh_interval_s: float = 1.0,
        groups: SavedGroupStore | None = None,
        on_access_change: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._store = store
        # Called when datasources or API keys changed (an `access:` notice, or any full
        # reload): the key ring rides this feed rather than running a second one.
        self.on_access_change = on_access_change
        self._group_store = groups
        self._refresh_interval_s = refresh_interval_s
        self._live: dict[str, LiveExperiment] = {}
        # Saved groups by id, as conditions read them ($inGroup); replaced, never mutated.
        self.groups: dict[str, GroupMembers] = {}
        self.group_info: dict[str, SavedGroup] = {}
        # Archived ids, so that a full reload read before an archive cannot revive one.
        self._archived: set[str] = set()
        self._revision = -1
        self._tasks: list[asyncio.Task[None]] = []
        self._refresh_lock = asyncio.Lock()
        self._subscribed = asyncio.Event()

    def get(self, experiment_id: str) -> LiveExperiment | None:
        """The live experiment, or None; never touches Redis."""
        return self._live.get(experiment_id)

    def all(self) -> list[Experiment]:
        """Every experiment, ordered by id."""
        return [self._live[k].experiment for k in sorted(self._live)]

    def put(self, experiment: Experiment) -> None:
        """Write-through after this replica stored a change (never goes back a revision)."""
        current = self._live.get(experiment.id)
        if current is None or current.experiment.revision <= experiment.revision:
            self._live[experiment.id] = LiveExperiment.of(experiment)

    def remove(self, experiment_id: str) -> None:
        """Write-through after this replica archived an experiment (ids are never reused)."""
        self._archived.add(experiment_id)
        self._live.pop(experiment_id, None)

    async def refresh(self) -> None:
        """Reload everything if the store's revision moved since the last load.

        The revision counter only grows, so a store revision below the one held means Redis
        lost acknowledged writes (a failover to a lagging replica, a restore): the store is
        the truth again, and every replica converges on it instead of keeping what it had
        seen (which would split replicas between the lost and the surviving version).
        """
        async with self._refresh_lock:
            if await self._store.revision() == self._revision:
                return
            revision, experiments = await self._store.load_all()
            rolled_back = revision < self._revision
            if rolled_back:
                log.warning(
                    "experiment revision went back from %d to %d (writes lost by Redis): serving what Redis holds",
                    self._revision,
                    revision,
                )
                self._archived -= experiments.keys()
            live = dict(self._live)
            for experiment_id, experiment in experiments.items():
                if experiment_id in self._archived:
                    continue
                current = live.get(experiment_id)
                # A write-through put() may already hold a newer revision than this load.
                newer = rolled_back or current is None or current.experiment.revision <= experiment.revision
                if newer and (current is None or current.experiment != experiment):
                    live[experiment_id] = LiveExperiment.of(experiment)
            for gone in live.keys() - experiments.keys():
                del live[gone]
            await self._refresh_groups()  # first: a new condition must never see its group missing
            if self.on_access_change is not None:
                await self.on_access_change()
            self._live = live
            self._revision = revision

    async def _refresh_groups(self) -> None:
        """Reload the saved groups whose revision moved (a big group's ids are not re-read otherwise)."""
        if self._group_store is None:
            return
        stored = await self._group_store.load_all()
        for group_id, group in stored.items():
            held = self.group_info.get(group_id)
            if held is None or _version(held) != _version(group):
                await self._load_group(group)
        for gone in self.group_info.keys() - stored.keys():
            self._drop_group(gone)

    async def reload_group(self, group_id: str) -> None:
        """Re-read one saved group if its stored revision moved past the one held (or drop it)."""
        assert self._group_store is not None
        group = await self._group_store.get(group_id)
        if group is None:
            self._drop_group(group_id)
        elif (held := self.group_info.get(group_id)) is None or _version(held) != _version(group):
            await self._load_group(group)

    async def _load_group(self, group: SavedGroup) -> None:
        """Read a group's ids in batches (each batch yields to the event loop) and swap them in."""
        assert self._group_store is not None
        hashes = array("Q")
        async for batch in self._group_store.ids(group.id):
            hashes.extend(member_hashes(batch))  # hashed batch by batch, between awaits
        held = self.group_info.get(group.id)
        if held is not None and held.create_time_ms == group.create_time_ms and held.revision > group.revision:
            return  # a concurrent load of a newer revision of the same group finished first: keep it
        self.groups = {**self.groups, group.id: MemberSet.from_hashes(hashes)}
        self.group_info = {**self.group_info, group.id: group}

    def _drop_group(self, group_id: str) -> None:
        self.groups = {k: v for k, v in self.groups.items() if k != group_id}
        self.group_info = {k: v for k, v in self.group_info.items() if k != group_id}

    async def start(self, subscribe_timeout_s: float = 5.0) -> None:
        """Load once (failing if the store is down), then follow changes in the background.

        Returns once the change feed is live, so that nothing written after start()
        returns can be missed for longer than a pub/sub hop.
        """
        await self.refresh()
        self._tasks = [
            asyncio.create_task(self._follow_changes(), name="registry-changes"),
            asyncio.create_task(self._poll_revision(), name="registry-poll"),
        ]
        try:
            await asyncio.wait_for(self._subscribed.wait(), subscribe_timeout_s)
        except TimeoutError:
            log.warning("experiment change feed not live after %.1fs; polling meanwhile", subscribe_timeout_s)

    async def stop(self) -> None:
        """Stop following changes."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    async def apply_notice(self, notice: ChangeNotice) -> None:
        """Apply one pushed write: read just the experiments it names.

        If it is the next revision, this replica is now up to date with it; if a
        revision was skipped (a lost message), reload everything at once.
        """
        async with self._refresh_lock:  # never interleaved with a full reload's diff
            if notice.revision > self._revision + 1:
                gap = True
            else:
                gap = False
                for experiment_id in notice.experiment_ids:
                    if experiment_id == ACCESS_NOTICE:
                        if self.on_access_change is not None:
                            await self.on_access_change()
                        continue
                    if experiment_id.startswith(NOTICE_PREFIX):
                        if self._group_store is not None:
                            await self.reload_group(experiment_id.removeprefix(NOTICE_PREFIX))
                        continue
                    experiment = await self._store.get(experiment_id)
                    if experiment is None:
                        self.remove(experiment_id)
                    else:
                        self.put(experiment)
                self._revision = max(self._revision, notice.revision)
        if gap:
            await self.refresh()

    async def _follow_changes(self) -> None:
        while True:
            try:
                async for notice in self._store.changes():
                    if notice.revision < 0:  # (re)subscribed: anything may have been missed
                        await self.refresh()
                        self._subscribed.set()
                    else:
                        await self.apply_notice(notice)
            except StoreUnavailableError as exc:
                log.warning("experiment change feed lost, resubscribing: %s", exc)
            except Exception:  # keep following: a dead task would leave only polling
                log.exception("experiment change feed failed, resubscribing")
            _stop_if_cancelled()
            await asyncio.sleep(min(self._refresh_interval_s, 1.0))

    async def _poll_revision(self) -> None:
        while True:
            await asyncio.sleep(self._refresh_interval_s)
            try:
                await self.refresh()
            except StoreUnavailableError as exc:
                log.warning("experiment refresh failed: %s", exc)
            except Exception:  # keep polling whatever one refresh hit
                log.exception("experiment refresh failed")
            _stop_if_cancelled()


def _version(group: SavedGroup) -> tuple[int, int]:
    """What identifies a group's content: a deleted and re-created group starts again at
    revision 1, so its creation time tells it apart from the one it replaced."""
    return group.create_time_ms, group.revision


def _stop_if_cancelled() -> None:
    """Re-raise a cancellation that a Redis call turned into an error (redis-py's timeouts can
    convert a CancelledError arriving mid-read into a TimeoutError); else stop() would wait forever."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
