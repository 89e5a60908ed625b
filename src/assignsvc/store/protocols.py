"""The store seams: the minimal operations the use cases need from storage."""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from assignsvc.core.model import Experiment
from assignsvc.core.saved_groups import SavedGroup


class ClaimKind(enum.Enum):
    """What a claim found or did."""

    CREATED = "created"  # no arm was stored; the proposed arm is stored now
    EXISTING = "existing"  # an arm was stored at the current bucket version
    BLOCKED = "blocked"  # an arm is stored at a bucket version below min_bucket_version
    ABSENT = "absent"  # nothing stored and nothing proposed: nothing written


class Claim(NamedTuple):
    """Outcome of a claim; arm fields are meaningful unless kind is ABSENT (a NamedTuple:
    one is built per claim, and a frozen dataclass's __init__ costs several times more)."""

    kind: ClaimKind
    arm_index: int = -1
    first_seen_ms: int = 0
    bucket_version: int = 0


# (experiment, participant id, proposed arm or None, now_ms): the arguments of claim().
ClaimRequest = tuple[Experiment, str, int | None, int]


class AssignmentStore(Protocol):
    """Sticky first-seen assignments: written once, never changed."""

    async def claim(
        self,
        experiment: Experiment,
        participant_id: str,
        proposed_arm: int | None,
        now_ms: int,
        timeout_s: float | None = None,
    ) -> Claim:
        """Return the stored arm, or store `proposed_arm` if none is stored (atomically).

        One round trip. With proposed_arm None it only looks. A participant holding an
        arm from a version below min_bucket_version is reported BLOCKED, nothing written.
        After timeout_s (the caller's deadline) it gives up: StoreUnavailableError. The
        claim may still reach Redis later; it then stores what any claim would (the first
        arm wins), so giving up changes no outcome.
        """
        ...

    async def claim_many(self, requests: Sequence[ClaimRequest]) -> list[Claim]:
        """claim() for each request, in one round trip; one Claim per request, in order."""
        ...

    async def lookup(self, experiment: Experiment, participant_id: str) -> Claim:
        """The stored arm at the current bucket version (EXISTING), else ABSENT."""
        ...

    async def arm_counts(self, experiment: Experiment, bucket_version: int) -> list[int]:
        """Stored assignments per arm index at one bucket version (exact counters)."""
        ...

    async def has_assignments(self, experiment: Experiment) -> bool:
        """True if any assignment is stored, at any bucket version."""
        ...


MUST_BE_NEW = "new"
# The revision a conditional write expects: a number, MUST_BE_NEW, or None (unconditional).
Expected = int | str | None
ARCHIVED = -2  # WriteConflict.found: the id belongs to a deleted experiment
MISSING = -1  # WriteConflict.found: no experiment with that id


@dataclass(frozen=True, slots=True)
class WriteConflict:
    """A conditional write found another revision (or MISSING / ARCHIVED): nothing written."""

    experiment_id: str
    found: int


@dataclass(frozen=True, slots=True)
class ChangeEvent:
    """A webhook event to record with a write: its type, which write, extra `data` fields (JSON)."""

    type: str
    write_index: int = 0
    detail: str = "{}"


@dataclass(frozen=True, slots=True)
class ChangeNotice:
    """One stored write: the global revision it produced and the experiments it changed."""

    revision: int
    experiment_ids: tuple[str, ...]


class ExperimentStore(Protocol):
    """Experiment definitions shared by every replica, with a change feed."""

    async def write(
        self, writes: Sequence[tuple[Experiment, Expected]], events: Sequence[ChangeEvent] = ()
    ) -> WriteConflict | None:
        """Store every experiment, each only if its stored revision is as expected.

        All or nothing, in one atomic step, then every replica is told. The
        experiments carry their new revision already. `events` are recorded for the
        webhooks in the same atomic step (each names the write it describes).
        """
        ...

    async def archive(self, experiment_id: str, expected: int | None) -> WriteConflict | None:
        """Move an experiment to the archive (its id stays taken), if at that revision,
        recording experiment.deleted in the same atomic step."""
        ...

    async def put(self, experiment: Experiment) -> None:
        """Store (create or overwrite) an experiment and tell every replica."""
        ...

    async def get(self, experiment_id: str) -> Experiment | None:
        """One experiment, or None."""
        ...

    async def get_archived(self, experiment_id: str) -> Experiment | None:
        """A deleted experiment, or None."""
        ...

    async def load_all(self) -> tuple[int, dict[str, Experiment]]:
        """Every experiment with the revision they are consistent with."""
        ...

    async def revision(self) -> int:
        """A number that changes whenever any experiment changes."""
        ...

    def changes(self) -> AsyncIterator[ChangeNotice]:
        """A notice per stored write, pushed by whichever replica wrote it.

        The first item is a notice with revision -1 once the subscription is live, so
        that a subscriber can reload once and miss nothing written before it subscribed.
        """
        ...


class SavedGroupStore(Protocol):
    """Saved groups shared by every replica; writes are announced on the experiments' change feed."""

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
        """One atomic change if the stored revision is as expected: op is create, update
        (add and remove ids), replace or union (with a staged upload) or delete. Returns the
        group's new size, or the conflict (found -1: no such group)."""
        ...

    async def stage(self, upload: str, ids: Sequence[str]) -> None:
        """Add ids to an upload in progress."""
        ...

    async def discard(self, upload: str) -> None:
        """Drop an abandoned upload."""
        ...

    async def get(self, group_id: str) -> SavedGroup | None:
        """One description, or None."""
        ...

    async def load_all(self) -> dict[str, SavedGroup]:
        """Every description."""
        ...

    def ids(self, group_id: str) -> AsyncIterator[list[bytes]]:
        """A group's ids, in batches."""
        ...
