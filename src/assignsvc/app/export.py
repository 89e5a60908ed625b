"""The ExportAssignments use case: every stored row of an experiment, in chunks, resumable.

Order is fixed: bucket version ascending, storage shard ascending, participant id
(bytes) ascending within a shard. A resume token names the last row delivered, so
rows present when the export started are delivered exactly once across any number
of resumptions (rows are never changed or removed). Rows stored during the export
appear if they land after the position reached, and not otherwise.

Reads go shard batch by shard batch, one batch prefetched while the previous one is
sent: memory stays bounded by two batches, a slow reader slows the reads down (the
generator is only resumed when gRPC flow control lets the chunk out), and a
cancelled stream cancels the read in flight.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from assignsvc.app.pacing import SLICE_ROWS, Pacer
from assignsvc.app.registry import ExperimentRegistry
from assignsvc.core import resume_token
from assignsvc.core.clock import Clock, wall_clock_ms
from assignsvc.core.model import Experiment, ExperimentType
from assignsvc.core.resume_token import ExportPosition, TokenError
from assignsvc.core.validation import experiment_id_violations
from assignsvc.errors import FieldViolation, InvalidArgumentError, NotFoundError
from assignsvc.metrics import EXPORT_ROWS
from assignsvc.store.claims import keep_rows
from assignsvc.store.protocols import AssignmentRowStore, ExperimentStore
from assignsvc.store.rows import ShardRows

DEFAULT_CHUNK_SIZE = 1000
MAX_CHUNK_SIZE = 10_000
SHARDS_PER_READ = 64  # ~250 rows per shard per million assignments: a few thousand rows per read


@dataclass(frozen=True, slots=True)
class ExportFilters:
    """Which rows to export; None means no filter. first_seen: since inclusive, until exclusive."""

    arm_id: str | None = None
    bucket_version: int | None = None
    first_seen_since_ms: int | None = None
    first_seen_until_ms: int | None = None


# One stored assignment: (participant id as UTF-8 bytes, packed row (store.claims.pack_row),
# bucket version, stratum key or ""). A plain tuple,
# unpacked only where needed: an export builds millions of them.
ExportedRow = tuple[bytes, int, int, str]


@dataclass(frozen=True, slots=True)
class ExportChunk:
    """Rows and the token that resumes right after the last of them."""

    experiment: Experiment
    rows: list[ExportedRow]
    resume_token: str


class Exporter:
    """Streams an experiment's rows (live or deleted) from the shard hashes."""

    def __init__(
        self,
        registry: ExperimentRegistry,
        experiments: ExperimentStore,
        rows: AssignmentRowStore,
        clock: Clock = wall_clock_ms,
    ) -> None:
        self._registry = registry
        self._experiments = experiments
        self._rows = rows
        self._clock = clock
        self._token_key: bytes | None = None

    async def experiment(self, experiment_id: str) -> Experiment:
        """A live experiment from memory, else a deleted one from the archive; NotFoundError."""
        violations = experiment_id_violations(experiment_id, "experiment_id")
        if violations:
            raise InvalidArgumentError(violations)
        live = self._registry.get(experiment_id)
        if live is not None:
            return live.experiment
        archived = await self._experiments.get_archived(experiment_id)
        if archived is None:
            raise NotFoundError("experiment", experiment_id)
        return archived

    async def export(
        self,
        experiment_id: str,
        filters: ExportFilters,
        token: str = "",
        chunk_size: int = 0,
        pacer: Pacer | None = None,
    ) -> AsyncIterator[ExportChunk]:
        """Chunks of at most chunk_size rows (0: the default); validation errors are raised
        before the first chunk. `pacer` slices the work so that Assign keeps the loop."""
        experiment = await self.experiment(experiment_id)
        arm_filter = self._check(experiment, filters, chunk_size)
        key = await self._key()
        scope = resume_token.export_scope(experiment.id, filters)
        start = self._start(key, scope, token)
        size = chunk_size or DEFAULT_CHUNK_SIZE
        pacer = pacer or Pacer(1.0)
        versions = (
            [filters.bucket_version] if filters.bucket_version is not None else range(experiment.bucket_version + 1)
        )
        strata = await self._rows.strata(experiment) if experiment.type is ExperimentType.PREASSIGNED else {}
        stratum_names = {sid.encode(): key for sid, key in strata.items()}  # as the shard hashes name them
        chunk: list[ExportedRow] = []
        sent = position = start
        for version in versions:
            if start is not None and version < start.bucket_version:
                continue
            first_shard = start.shard if start is not None and version == start.bucket_version else 0
            async for shard_rows in self._shards(experiment, version, first_shard, bool(strata)):
                rows = _decode(shard_rows, version, stratum_names)
                if start is not None and (version, shard_rows.shard) == (start.bucket_version, start.shard):
                    rows = rows[bisect.bisect_right(rows, start.participant.encode(), key=_participant) :]
                if not rows:
                    continue
                position = ExportPosition(version, shard_rows.shard, rows[-1][0].decode())
                if len(rows) >= SLICE_ROWS or shard_rows.shard % 16 == 0:
                    await pacer.checkpoint()
                rows = _filter(rows, arm_filter, filters)
                while rows:
                    taken = size - len(chunk)
                    chunk += rows[:taken]
                    rows = rows[taken:]
                    if len(chunk) >= size:
                        last = ExportPosition(version, shard_rows.shard, chunk[-1][0].decode())
                        EXPORT_ROWS.inc(len(chunk))
                        yield ExportChunk(experiment, chunk, resume_token.issue(key, scope, last, self._clock()))
                        chunk, sent = [], last
        if chunk or position != sent or sent is None:
            # The last chunk (possibly empty): its token resumes after everything read,
            # so a caller always ends with a token, even for an export with no rows.
            final = position or ExportPosition(-1, -1, "")
            EXPORT_ROWS.inc(len(chunk))
            yield ExportChunk(experiment, chunk, resume_token.issue(key, scope, final, self._clock()))

    async def _shards(
        self, experiment: Experiment, version: int, first_shard: int, with_strata: bool
    ) -> AsyncIterator[ShardRows]:
        """The shards from first_shard on, one read prefetched ahead of the one being used."""
        batches = [
            list(range(s, min(s + SHARDS_PER_READ, experiment.storage_shards)))
            for s in range(first_shard, experiment.storage_shards, SHARDS_PER_READ)
        ]
        if not batches:
            return
        loop = asyncio.get_running_loop()
        pending = loop.create_task(self._rows.read_shards(experiment, version, batches[0], with_strata))
        try:
            for i in range(len(batches)):
                current = await pending
                if i + 1 < len(batches):
                    pending = loop.create_task(self._rows.read_shards(experiment, version, batches[i + 1], with_strata))
                for shard_rows in current:
                    yield shard_rows
        finally:
            if not pending.done():
                pending.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await pending

    @staticmethod
    def _check(experiment: Experiment, filters: ExportFilters, chunk_size: int) -> int | None:
        """The arm index the arm filter names (or None); every violation at once."""
        violations: list[FieldViolation] = []
        arm_index = None
        if filters.arm_id is not None:
            ids = [arm.id for arm in experiment.arms]
            if filters.arm_id in ids:
                arm_index = ids.index(filters.arm_id)
            else:
                violations.append(
                    FieldViolation("arm_id", f"is not an arm of {experiment.id!r} (arms: {', '.join(ids)})")
                )
        if filters.bucket_version is not None and filters.bucket_version > experiment.bucket_version:
            violations.append(
                FieldViolation(
                    "bucket_version", f"must be at most the current bucket version {experiment.bucket_version}"
                )
            )
        if not 0 <= chunk_size <= MAX_CHUNK_SIZE:
            violations.append(
                FieldViolation("chunk_size", f"must be between 1 and {MAX_CHUNK_SIZE} (0: {DEFAULT_CHUNK_SIZE})")
            )
        since, until = filters.first_seen_since_ms, filters.first_seen_until_ms
        if since is not None and until is not None and until <= since:
            violations.append(FieldViolation("first_seen_until", "must be after first_seen_since"))
        if violations:
            raise InvalidArgumentError(violations)
        return arm_index

    def _start(self, key: bytes, scope: str, token: str) -> ExportPosition | None:
        if not token:
            return None
        try:
            return resume_token.open_token(key, scope, token, self._clock())
        except TokenError as error:
            raise InvalidArgumentError.single("resume_token", str(error)) from error

    async def _key(self) -> bytes:
        if self._token_key is None:
            self._token_key = await self._rows.export_token_key()
        return self._token_key


def _participant(row: ExportedRow) -> bytes:
    return row[0]


def _decode(shard_rows: ShardRows, version: int, stratum_names: dict[bytes, str]) -> list[ExportedRow]:
    """One shard's rows, ordered by participant id, in one comprehension (no dict, no
    intermediate pairs: an export touches every stored row); stratum_names maps a stored
    stratum id to its key."""
    flat = shard_rows.rows
    if not shard_rows.strata:
        return sorted(
            [(participant, int(packed), version, "") for participant, packed in zip(flat[::2], flat[1::2], strict=True)]
        )
    of = shard_rows.strata
    return sorted(
        [
            (participant, int(packed), version, stratum_names.get(of.get(participant, b""), ""))
            for participant, packed in zip(flat[::2], flat[1::2], strict=True)
        ]
    )


def _filter(rows: list[ExportedRow], arm: int | None, filters: ExportFilters) -> list[ExportedRow]:
    """The rows the filters keep (the list itself when there are no filters)."""
    return keep_rows(rows, arm, filters.first_seen_since_ms, filters.first_seen_until_ms)
