"""experiment.warning (type srm): a periodic check of every RUNNING experiment's split.

Only the current phase is tested, against its own weights: counts of an earlier split
would make a weight change look like a mismatch.

Stats come from the exact per-arm counters (catalog.stats), so the check costs one
pipelined read per experiment and never touches the Assign path. Every replica runs
it, but a shared turn marker (SET NX PX) lets one replica per interval do the work; the
warning is raised once per experiment, bucket version and phase because the marker and the
event are written by one SET NX script (store.outbox.warn_once).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from assignsvc.app.catalog import ExperimentCatalog
from assignsvc.app.registry import ExperimentRegistry
from assignsvc.core.events import canonical_json
from assignsvc.core.model import ExperimentStatus
from assignsvc.errors import AssignsvcError
from assignsvc.store.codec import experiment_to_json
from assignsvc.store.protocols import Outbox

log = logging.getLogger(__name__)


class SrmWatcher:
    """Raises experiment.warning when a RUNNING experiment's SRM p-value drops below the threshold."""

    def __init__(
        self,
        registry: ExperimentRegistry,
        catalog: ExperimentCatalog,
        outbox: Outbox,
        threshold: float,
        interval_s: float,
    ) -> None:
        self._registry = registry
        self._catalog = catalog
        self._outbox = outbox
        self._threshold = threshold
        self._interval_s = interval_s
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def start(self) -> None:
        """Check every interval_s, in the background."""
        self._task = asyncio.create_task(self._run(), name="srm-watcher")

    async def stop(self) -> None:
        """Stop checking."""
        self._stopping = True  # also ends the loop should a library swallow the cancellation
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while not self._stopping:
            await asyncio.sleep(self._interval_s)
            try:
                if await self._outbox.take_turn("srm-check", int(self._interval_s * 1000)):
                    await self.check_once()
            except Exception:
                log.exception("SRM check failed; trying again in %.1fs", self._interval_s)
            task = asyncio.current_task()
            if task is not None and task.cancelling():  # a Redis call turned our cancellation into an error
                raise asyncio.CancelledError

    async def check_once(self) -> int:
        """Check every RUNNING experiment now; how many warnings were raised."""
        raised = 0
        for experiment in self._registry.all():
            if experiment.status is not ExperimentStatus.RUNNING:
                continue
            try:
                stats = await self._catalog.stats(experiment.id, None, with_strata=False)  # counters only
            except AssignsvcError:
                continue  # deleted meanwhile, or Redis busy: next round
            current = stats.current  # older phases ran other splits: their counts would be false alarms
            p = current.srm_p_value
            if p is None or p >= self._threshold:
                continue
            arms = stats.experiment.arms
            detail = {
                "warning": {
                    "type": "srm",
                    "bucket_version": stats.bucket_version,
                    "phase": current.phase.number,
                    "counts": {arm.id: count for arm, count in zip(arms, current.counts, strict=True)},
                    "expected_weights": {arm.id: w for arm, w in zip(arms, current.phase.weights, strict=True)},
                    "p_value": p,
                    "threshold": self._threshold,
                }
            }
            json = experiment_to_json(stats.experiment)
            if await self._outbox.warn_once(
                experiment.id, stats.bucket_version, json, canonical_json(detail), current.phase.number
            ):
                raised += 1
        return raised
