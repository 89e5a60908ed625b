"""The store seams: the minimal operations the use cases need from storage."""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from assignsvc.core.access import ApiKey, Datasource
from assignsvc.core.events import Webhook
from assignsvc.core.model import Experiment
from assignsvc.core.saved_groups import SavedGroup

if TYPE_CHECKING:  # their modules import this one
    from assignsvc.store.outbox import ClaimedDelivery, DeliveryRecord, NewDelivery, StreamEvent
    from assignsvc.store.rows import ShardRows, StratumCounts


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

    async def phase_counts(self, experiment: Experiment, bucket_version: int) -> dict[int, list[int]]:
        """phase -> stored assignments per arm index at one bucket version (each assignment
        is counted in the phase the experiment was in when it was stored)."""
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


class WebhookStore(Protocol):
    """Webhook definitions shared by every replica: what the webhook manager and dispatcher
    read and write (delivery state changes through Outbox.complete)."""

    async def create(self, webhook: Webhook) -> bool:
        """Store a new webhook; False if its id is taken."""
        ...

    async def save(self, webhook: Webhook, *, set_enabled: bool, read: Webhook | None = None) -> bool | None:
        """Overwrite the config (and, if set_enabled, the enabled flag and reason; enabling
        clears the reason and failure count); False if it is gone, None (nothing written)
        if `read` is given and the stored config is no longer its config."""
        ...

    async def get(self, webhook_id: str) -> Webhook | None:
        """One webhook, or None."""
        ...

    async def all(self) -> list[Webhook]:
        """Every webhook, by id."""
        ...

    async def delete(self, webhook_id: str) -> bool:
        """Remove a webhook, its delivery log and pending deliveries; False if it did not exist."""
        ...


class Outbox(Protocol):
    """The webhook outbox: the events that writes record, and one durable delivery per
    (event, webhook) that exactly one replica attempts at a time, under a lease."""

    async def ensure_group(self) -> None:
        """Make the events readable by read_events (from the first event); idempotent."""
        ...

    async def read_events(self, consumer: str, count: int) -> list[StreamEvent]:
        """Up to `count` events no consumer has been given yet, now given to `consumer`, in order."""
        ...

    async def take_over(self, consumer: str, min_idle_ms: int, count: int) -> list[StreamEvent]:
        """Events given to a consumer that did not fan them out within min_idle_ms (it died)."""
        ...

    async def fan_out(self, event: StreamEvent, deliveries: Sequence[NewDelivery], now_ms: int) -> None:
        """Create each delivery unless it exists (due at now_ms) and retire the event, atomically."""
        ...

    async def claim(self, now_ms: int, lease_ms: int, limit: int, token: str) -> list[ClaimedDelivery]:
        """Up to `limit` deliveries due at now_ms, each leased to `token` (due again only
        when the lease ends; a delivery whose lease ran out records a lost attempt)."""
        ...

    async def complete(
        self,
        claimed: ClaimedDelivery,
        token: str,
        outcome: str,
        attempt: dict[str, Any],
        *,
        next_ms: int = 0,
        reason: str = "",
        disable_after: int = 0,
    ) -> bool:
        """Record the attempt and its outcome (retry at next_ms, succeeded, failed, gone,
        dropped) and its effect on the webhook; False if the lease passed to another worker."""
        ...

    async def deliveries(self, webhook_id: str, count: int, after_id: str) -> list[DeliveryRecord]:
        """A webhook's deliveries, newest (highest id) first, after `after_id` ('' = the newest)."""
        ...

    async def add_test_event(self, webhook_id: str, detail: str) -> str:
        """Record a webhook.test event for one webhook; its event id."""
        ...

    async def take_turn(self, name: str, period_ms: int) -> bool:
        """True for the first replica to ask in each period of period_ms."""
        ...

    async def warn_once(
        self, experiment_id: str, bucket_version: int, experiment_json: str, detail: str, phase: int = 0
    ) -> bool:
        """Record experiment.warning unless already recorded for this bucket version and phase;
        True if recorded."""
        ...


class AccessStore(Protocol):
    """Datasources and API key records (digests, never keys), shared by every replica;
    each write is announced on the experiments' change feed."""

    async def create_datasource(self, datasource: Datasource) -> bool:
        """Store a new datasource; False if its id exists."""
        ...

    async def datasources(self) -> list[Datasource]:
        """Every datasource, by id."""
        ...

    async def create_key(self, key: ApiKey) -> bool:
        """Store a new key record; False if its id exists."""
        ...

    async def save_key(self, key: ApiKey) -> bool:
        """Replace an existing key record (revocation); False if it is gone."""
        ...

    async def keys(self) -> list[ApiKey]:
        """Every key record, revoked ones included, by id."""
        ...

    async def record_use(self, used_ms: dict[str, int]) -> None:
        """Remember when keys were last used: the later of the stored and the given time."""
        ...

    async def last_used(self) -> dict[str, int]:
        """Key id -> when it was last used (ms), for keys ever used."""
        ...


class AssignmentRowStore(Protocol):
    """Assignment rows in bulk, shard by shard: export reads, preassigned writes and
    per-stratum counters, over the same rows AssignmentStore claims."""

    async def read_shards(
        self, experiment: Experiment, bucket_version: int, shards: Sequence[int], with_strata: bool
    ) -> list[ShardRows]:
        """Every row of the given storage shards at one bucket version, one ShardRows each, in order."""
        ...

    async def stored_rows(
        self, experiment: Experiment, ids_by_shard: Mapping[int, Sequence[str]]
    ) -> dict[str, tuple[int, int]]:
        """participant id -> (first_seen_ms, arm index) at the current version, for those with a row."""
        ...

    async def write_preassigned(
        self, experiment: Experiment, groups: Mapping[int, Mapping[tuple[int, str], Sequence[str]]], now_ms: int
    ) -> dict[str, tuple[int, int]]:
        """Store each row unless the participant has one (the first write wins, as for
        claims; counters count what is stored); `groups` is shard -> (arm, stratum id or
        "") -> ids. Returns participant -> (first_seen_ms, arm) for those that had a row."""
        ...

    async def stratum_counts(self, experiment: Experiment, bucket_version: int) -> dict[str, list[int]]:
        """stratum id ("" for none) -> preassigned rows per arm index, over every shard."""
        ...

    async def stratum_totals(self, experiment: Experiment, bucket_version: int) -> list[StratumCounts]:
        """Per-stratum arm counts named by the strata's keys, ordered by key."""
        ...

    async def strata(self, experiment: Experiment) -> dict[str, str]:
        """stratum id -> stratum key (canonical JSON of its attributes)."""
        ...

    async def define_strata(self, experiment: Experiment, strata: Mapping[str, str]) -> None:
        """Record stratum id -> key (before any row names them)."""
        ...

    async def export_token_key(self) -> bytes:
        """The deployment's token-signing key: made by the first caller, the same for every caller after."""
        ...
