"""The experiment as the core sees it: immutable values, no I/O, times in ms since epoch."""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from typing import Any

from assignsvc.core.scoping import local_part


class HashAlgorithm(enum.Enum):
    """How a participant becomes a point in [0, 1). A value is never redefined."""

    MURMUR3 = "murmur3"
    GROWTHBOOK_V1 = "growthbook_v1"
    GROWTHBOOK_V2 = "growthbook_v2"


class ExperimentStatus(enum.Enum):
    """Lifecycle status; only RUNNING creates new assignments."""

    DRAFT = "draft"
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"


class ExperimentType(enum.Enum):
    """ONLINE hashes on first sight; PREASSIGNED randomizes an uploaded list."""

    ONLINE = "online"
    PREASSIGNED = "preassigned"


class RedisFailurePolicy(enum.Enum):
    """What Assign answers when Redis cannot record a first arm: refuse, or serve the hash's arm.

    FAIL_CLOSED keeps "every arm answered is stored"; FAIL_OPEN keeps serving (the hash
    gives the same arm the stored row would, unless the experiment was reconfigured since).
    """

    FAIL_CLOSED = "fail_closed"
    FAIL_OPEN = "fail_open"


@dataclass(frozen=True, slots=True)
class Arm:
    """One arm; its index is its position in Experiment.arms."""

    id: str
    name: str
    weight: float
    # The arm's payload for the application (GrowthBook's variation value), as compact JSON
    # text of a string, number, boolean or object; "" means the arm id as a string. Never
    # hashed and never stored with assignments: setting it moves no participant.
    value: str = ""

    @property
    def resolved_value(self) -> Any:
        """The arm's value as a JSON-like Python value (the arm id when none was set)."""
        return json.loads(self.value) if self.value else self.id


@dataclass(frozen=True, slots=True)
class Namespace:
    """A slice [start, end) of a mutual-exclusion namespace."""

    id: str
    start: float
    end: float


@dataclass(frozen=True, slots=True)
class Phase:
    """One traffic split an experiment ran: each phase's assignments are counted apart and
    tested against its own weights (a split change would make the old counts look wrong)."""

    number: int
    start_time_ms: int
    weights: tuple[float, ...]  # in arm order (arms cannot change once assignments exist)
    coverage: float
    namespace: Namespace | None


@dataclass(frozen=True, slots=True)
class Experiment:
    """A validated experiment definition (see core.validation for the rules)."""

    id: str
    name: str
    arms: tuple[Arm, ...]
    coverage: float = 1.0
    namespace: Namespace | None = None
    seed: str = ""
    hash_algorithm: HashAlgorithm = HashAlgorithm.MURMUR3
    bucket_version: int = 0
    min_bucket_version: int = 0
    status: ExperimentStatus = ExperimentStatus.DRAFT
    type: ExperimentType = ExperimentType.ONLINE
    start_time_ms: int | None = None
    end_time_ms: int | None = None
    create_time_ms: int = 0
    update_time_ms: int = 0
    # How many Redis hashes hold this experiment's assignments per bucket version.
    # Fixed at creation: changing it would move stored rows, never arms.
    storage_shards: int = field(default=4096)
    # QA overrides, participant id -> arm id: answered before hashing, never stored.
    # Treat as read-only (a dict so that it stays cheap to look up on the hot path).
    forced_arms: dict[str, str] = field(default_factory=dict)
    # Bumped by every stored change; the API's etag (optimistic concurrency).
    revision: int = 0
    # Eligibility condition, GrowthBook's syntax as compact JSON text ("" = everyone).
    condition: str = ""
    # Attribute hashed and stored instead of the participant id ("" = the participant id),
    # and the one tried when it is missing (GrowthBook's hashAttribute / fallbackAttribute).
    hash_attribute: str = ""
    fallback_attribute: str = ""
    # Assign's answer when Redis fails; decides answers only, never a stored arm or a hash.
    redis_failure_policy: RedisFailurePolicy = RedisFailurePolicy.FAIL_CLOSED
    # The current phase (core.lifecycle.next_phase): 0 until a split change with stored
    # assignments; phase_start_ms is unused for phase 0 (it began with the experiment).
    phase: int = 0
    phase_start_ms: int = 0
    past_phases: tuple[Phase, ...] = ()  # the phases before the current one, oldest first
    # The arm every participant is answered once STOPPED (the shipped winner); "" = none.
    released_arm_id: str = ""

    def arm_index(self, arm_id: str) -> int:
        """Position of the arm with that id, or -1."""
        return next((i for i, arm in enumerate(self.arms) if arm.id == arm_id), -1)

    @property
    def current_phase(self) -> Phase:
        """The phase running now, with the split it runs."""
        start = self.phase_start_ms if self.phase else self.create_time_ms
        weights = tuple(a.weight for a in self.arms)
        return Phase(self.phase, start, weights, self.coverage, self.namespace)

    @property
    def phases(self) -> tuple[Phase, ...]:
        """Every phase, oldest first; the last is the current one."""
        return (*self.past_phases, self.current_phase)

    @property
    def effective_seed(self) -> str:
        """The hash seed: the explicit seed, else the experiment id as its datasource's
        callers know it (as GrowthBook does: its seed defaults to the experiment key)."""
        return self.seed or local_part(self.id)


class AssignmentReason(enum.Enum):
    """Why Assign answered as it did (mirrors the API's AssignmentReason)."""

    NEW_ASSIGNMENT = "new_assignment"
    STICKY = "sticky"
    EXCLUDED_BY_COVERAGE = "excluded_by_coverage"
    EXCLUDED_BY_NAMESPACE = "excluded_by_namespace"
    EXPERIMENT_NOT_RUNNING = "experiment_not_running"
    BLOCKED_BY_MIN_BUCKET_VERSION = "blocked_by_min_bucket_version"
    NOT_PREASSIGNED = "not_preassigned"
    FORCED = "forced"
    EXPERIMENT_NOT_STARTED = "experiment_not_started"
    EXPERIMENT_ENDED = "experiment_ended"
    NOT_ELIGIBLE = "not_eligible"
    MISSING_HASH_ATTRIBUTE = "missing_hash_attribute"
    RELEASED = "released"
