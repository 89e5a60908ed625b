"""The Assign use case: registry (memory) -> bucketing core -> one store round trip.

The round trip is bounded by the call's deadline and the store's timeout; when it
fails, the experiment's RedisFailurePolicy decides the answer (store_failure_answer).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from assignsvc.app.registry import ExperimentRegistry, LiveExperiment
from assignsvc.core.bucketing import EXCLUDED_BY_COVERAGE, EXCLUDED_BY_NAMESPACE
from assignsvc.core.clock import Clock, wall_clock_ms
from assignsvc.core.model import (
    Arm,
    AssignmentReason,
    Experiment,
    ExperimentStatus,
    ExperimentType,
    RedisFailurePolicy,
)
from assignsvc.core.targeting import EMPTY_ATTRIBUTES
from assignsvc.core.validation import (
    MAX_PARTICIPANT_ID_BYTES,
    experiment_id_violations,
    participant_id_violations,
)
from assignsvc.errors import (
    AssignsvcError,
    FieldViolation,
    InvalidArgumentError,
    NotFoundError,
    StoreUnavailableError,
)
from assignsvc.metrics import FAIL_OPEN_ANSWERS, ArmCounts
from assignsvc.store.protocols import AssignmentStore, Claim, ClaimKind
from assignsvc.store.redis_errors import bounded
from assignsvc.store.sticky_cache import CacheKey, StickyCache

Attributes = dict[str, Any]
# (experiment id, participant id, attributes or None): one item of assign_many.
AssignItem = tuple[str, str, Attributes | None]
# Of a call's remaining deadline, what the store wait leaves for building and sending the
# answer (so that a FAIL_OPEN answer or an UNAVAILABLE reaches the caller before its deadline).
REPLY_SHARE = 0.1
REPLY_MIN_S = 0.005


class AssignmentResult(NamedTuple):
    """A participant's answer; arm is None when not in the experiment.

    A NamedTuple, not a frozen dataclass (as core.bucketing.Decision): one is built per
    item of every Assign and BatchAssign, and a frozen dataclass's __init__ with eight
    fields costs several times more.
    """

    experiment_id: str
    participant_id: str
    reason: AssignmentReason
    bucket_version: int
    arm: Arm | None = None
    arm_index: int = -1
    first_seen_ms: int = 0
    # Redis (or the sticky cache of it) backs this answer; see the API's Assignment.persisted.
    persisted: bool = False

    @property
    def in_experiment(self) -> bool:
        """True when the participant has an arm of the experiment (a released arm is everyone's)."""
        return self.arm is not None and self.reason is not AssignmentReason.RELEASED


_EXCLUSION = {  # BucketPlan.arm_of's answers for no arm
    EXCLUDED_BY_COVERAGE: AssignmentReason.EXCLUDED_BY_COVERAGE,
    EXCLUDED_BY_NAMESPACE: AssignmentReason.EXCLUDED_BY_NAMESPACE,
}


def closed_reason(experiment: Experiment, now_ms: int) -> AssignmentReason | None:
    """Why the experiment takes no new participants now, or None if it does.

    It takes them when RUNNING, ONLINE and inside the optional [start_time, end_time).
    """
    if experiment.type is ExperimentType.PREASSIGNED:
        return AssignmentReason.NOT_PREASSIGNED
    if experiment.status is not ExperimentStatus.RUNNING:
        return AssignmentReason.EXPERIMENT_NOT_RUNNING
    if experiment.start_time_ms is not None and now_ms < experiment.start_time_ms:
        return AssignmentReason.EXPERIMENT_NOT_STARTED
    if experiment.end_time_ms is not None and now_ms >= experiment.end_time_ms:
        return AssignmentReason.EXPERIMENT_ENDED
    return None


class ExperimentScope(NamedTuple):
    """What an Assign item's answer takes from its experiment id alone, at one instant."""

    experiment_id: str
    violations: list[FieldViolation]  # of the experiment id
    live: LiveExperiment | None  # None: not found (or the id is invalid)
    closed: AssignmentReason | None  # closed_reason at now_ms, when live
    now_ms: int


# At most 4 UTF-8 bytes a character: an id this short needs no encoding to be checked.
_SHORT_ID_CHARS = MAX_PARTICIPANT_ID_BYTES // 4
# A NamedTuple's generated __new__ (keyword and default handling in Python) costs ~2.5x
# building the same tuple with tuple.__new__ (measured: ~430 vs ~175 ns for PendingClaim):
# the per-item builds of a batch use this, with every field given in order.
_new = tuple.__new__
# Enum members read once: on Python 3.11 each `ClaimKind.CREATED` costs ~70 ns (a class
# attribute lookup through EnumType), a module global ~6 ns; a batch item reads several.
_CREATED, _EXISTING, _BLOCKED = ClaimKind.CREATED, ClaimKind.EXISTING, ClaimKind.BLOCKED
_NEW_ASSIGNMENT, _STICKY = AssignmentReason.NEW_ASSIGNMENT, AssignmentReason.STICKY
# A claim's answer should it store nothing although it proposed an arm (the claim script
# always stores a proposed arm, so this is never seen; it is what it always was).
_NOT_RUNNING = AssignmentReason.EXPERIMENT_NOT_RUNNING
# A batch's answers before _prepare_group writes them (never left in a returned list).
_UNANSWERED: Any = None


def _admit(scope: ExperimentScope, participant_id: str) -> LiveExperiment:
    """The live experiment for an item; InvalidArgumentError (every violation of both ids)
    or NotFoundError first, as Assign answers them."""
    violations = scope.violations + _id_violations(participant_id)
    if violations:
        raise InvalidArgumentError(violations)
    live = scope.live
    if live is None:
        raise NotFoundError("experiment", scope.experiment_id)
    return live


class PendingClaim(NamedTuple):
    """An Assign that needs the store: what to propose, and what to answer if nothing is stored.

    `unit_id` is the id hashed and stored: the participant id, or the value of the
    experiment's hash attribute.
    """

    experiment: Experiment
    participant_id: str
    proposed_arm: int | None
    now_ms: int
    fallback: AssignmentReason
    cache_key: CacheKey
    unit_id: str


class Assigner:
    """Answers Assign and GetAssignment."""

    def __init__(
        self,
        registry: ExperimentRegistry,
        store: AssignmentStore,
        clock: Clock = wall_clock_ms,
        cache: StickyCache | None = None,
        store_timeout_s: float | None = None,
    ) -> None:
        self._registry = registry
        self._store = store
        self._clock = clock
        self._store_timeout_s = store_timeout_s  # a bound of its own, beside the store's
        self.cache = cache if cache is not None else StickyCache(0)
        self.served = 0  # Assign items answered, ever: bulk work paces itself by it (pacing.py)
        self.arm_counts = ArmCounts()  # read by the metrics endpoint when scraped

    def _scope(self, experiment_id: str, now_ms: int) -> ExperimentScope:
        """What every item naming `experiment_id` shares at `now_ms` (assign_many builds it once
        per experiment in the batch; the registry cannot change under a loop with no await)."""
        violations = experiment_id_violations(experiment_id, "experiment_id")
        live = None if violations else self._registry.get(experiment_id)
        closed = closed_reason(live.experiment, now_ms) if live is not None else None
        return ExperimentScope(experiment_id, violations, live, closed, now_ms)

    def _live(self, experiment_id: str, participant_id: str) -> LiveExperiment:
        return _admit(self._scope(experiment_id, self._clock()), participant_id)

    def _store_budget(self, time_remaining_s: float | None) -> float | None:
        """How long the store may take: its own timeout, and less than what is left of the call."""
        budget = self._store_timeout_s
        if time_remaining_s is not None:
            left = max(0.0, time_remaining_s - max(REPLY_MIN_S, time_remaining_s * REPLY_SHARE))
            budget = left if budget is None else min(budget, left)
        return budget

    async def assign(
        self,
        experiment_id: str,
        participant_id: str,
        attributes: Attributes | None = None,
        time_remaining_s: float | None = None,
    ) -> AssignmentResult:
        """The stored arm if any; else, if the experiment takes new participants and the
        participant matches its condition, the hashed arm, stored now. Excluded and
        non-eligible participants are never stored (but keep an arm stored earlier). A
        forced arm (QA override) is answered first, in any status, with no store call.
        The store wait ends before `time_remaining_s` (the call's deadline) does; if the
        store fails, store_failure_answer applies the experiment's policy."""
        self.served += 1
        prepared = self._prepare_one(self._scope(experiment_id, self._clock()), participant_id, attributes)
        if isinstance(prepared, AssignmentResult):
            result = prepared
        else:
            try:
                claim = await self._store.claim(
                    prepared.experiment,
                    prepared.unit_id,
                    prepared.proposed_arm,
                    prepared.now_ms,
                    self._store_budget(time_remaining_s),
                )
            except StoreUnavailableError as error:
                result = store_failure_answer(prepared, error)
            else:
                result = self._finish(prepared, claim)
        if result.arm is not None:
            self.arm_counts.add(experiment_id, result.arm.id)
        return result

    def kept_reply(self, experiment_id: str, participant_id: str) -> bytes | None:
        """The serialized reply kept for a returning participant (keep_reply), answered as
        assign() would have answered it (counted, the row touched in the cache), or None."""
        live = self._registry.get(experiment_id)
        if live is None:
            return None
        experiment = live.experiment
        key = (experiment.id, experiment.bucket_version, experiment.min_bucket_version, participant_id)
        kept = self.cache.kept_reply(key, live)
        if kept is None:
            return None
        self.served += 1
        self.arm_counts.add(experiment_id, kept[1])
        return kept[2]

    def keep_reply(self, result: AssignmentResult, reply: bytes) -> None:
        """Keep `reply`, the serialized answer `result` of an Assign without attributes, with
        the cached row it came from, for kept_reply to answer the next time: only a STICKY
        answer from a stored row (a new assignment's reply says NEW_ASSIGNMENT once), and
        only where the participant id is the stored id (no hash attribute)."""
        live = self._registry.get(result.experiment_id)
        if live is None or result.reason is not AssignmentReason.STICKY or result.arm is None:
            return
        experiment = live.experiment
        if (
            live.targeting.hash_attribute
            or result.participant_id in experiment.forced_arms
            or result.bucket_version != experiment.bucket_version  # not what a cache hit answers
        ):
            return
        key = (experiment.id, experiment.bucket_version, experiment.min_bucket_version, result.participant_id)
        self.cache.keep_reply(key, (result.arm_index, result.first_seen_ms), (live, result.arm.id, reply))

    async def assign_many(
        self, items: Sequence[AssignItem], time_remaining_s: float | None = None
    ) -> list[AssignmentResult | AssignsvcError]:
        """Assign each (experiment_id, participant_id) as assign() would, with one store
        round trip for all of them. A bad item gets its own error; when the store fails,
        each item that needed it gets its experiment's policy answer (FAIL_OPEN: the hash's
        arm; FAIL_CLOSED: its own StoreUnavailableError)."""
        self.served += len(items)
        answers = self._prepare_many(items, self._clock())
        pending = [a for a in answers if isinstance(a, PendingClaim)]
        failure: StoreUnavailableError | None = None
        claims: list[Claim] = []
        if pending:
            requests = [(p.experiment, p.unit_id, p.proposed_arm, p.now_ms) for p in pending]
            try:
                claims = await bounded(
                    self._store.claim_many(requests), self._store_budget(time_remaining_s), "claim batch"
                )
            except StoreUnavailableError as error:
                failure = error
        if failure is None and len(pending) == len(answers):  # the common batch: every item claimed
            results: list[AssignmentResult | AssignsvcError] = self._finish_many(pending, claims)
        else:
            finished = iter(self._finish_many(pending, claims) if failure is None else ())
            results = [
                a
                if not isinstance(a, PendingClaim)
                else next(finished)
                if failure is None
                else _failure_answer(a, failure)
                for a in answers
            ]
        self._count_arms(results)
        return results

    def _prepare_many(
        self, items: Sequence[AssignItem], now_ms: int
    ) -> list[AssignmentResult | AssignsvcError | PendingClaim]:
        """_prepare_group for each experiment's items (a batch usually names one), each
        experiment's scope built once: the registry cannot change under this loop (no await)."""
        answers: list[AssignmentResult | AssignsvcError | PendingClaim] = [_UNANSWERED] * len(items)
        if not items:
            return answers
        first = items[0][0]
        groups: dict[str, Sequence[int]] = {}
        if all(item[0] == first for item in items):
            groups[first] = range(len(items))
        else:
            grouped: dict[str, list[int]] = {}
            for i, item in enumerate(items):
                grouped.setdefault(item[0], []).append(i)
            groups.update(grouped)
        for experiment_id, indexes in groups.items():
            self._prepare_group(self._scope(experiment_id, now_ms), items, indexes, answers)
        return answers

    def _count_arms(self, results: list[AssignmentResult | AssignsvcError]) -> None:
        """arm_counts for a batch: one update per (experiment, arm), not per item."""
        tally: dict[tuple[str, str], int] = {}
        for result in results:
            if type(result) is AssignmentResult and result.arm is not None:
                key = (result.experiment_id, result.arm.id)
                tally[key] = tally.get(key, 0) + 1
        for (experiment_id, arm_id), count in tally.items():
            self.arm_counts.add(experiment_id, arm_id, count)

    def _prepare_one(
        self, scope: ExperimentScope, participant_id: str, attributes: Attributes | None
    ) -> AssignmentResult | PendingClaim:
        """_prepare_group for one item; its error is raised."""
        answers: list[AssignmentResult | AssignsvcError | PendingClaim] = [_UNANSWERED]
        self._prepare_group(scope, ((scope.experiment_id, participant_id, attributes),), (0,), answers)
        answer = answers[0]
        if isinstance(answer, AssignsvcError):
            raise answer
        return answer

    def _prepare_group(
        self,
        scope: ExperimentScope,
        items: Sequence[AssignItem],
        indexes: Sequence[int],
        answers: list[AssignmentResult | AssignsvcError | PendingClaim],
    ) -> None:
        """Everything before the store, for items[i] (i in indexes, all of scope's experiment),
        answered into answers[i]: validation, released and forced arms, identity, cache,
        condition, hashing. One pass with what the experiment decides for every item read
        once (Assign is a group of one): a BatchAssign item costs a dict lookup and a hash."""
        live = scope.live
        if scope.violations or live is None:
            for i in indexes:
                try:
                    _admit(scope, items[i][1])
                except (InvalidArgumentError, NotFoundError) as error:
                    answers[i] = error
            return
        experiment = live.experiment
        if experiment.released_arm_id:
            for i in indexes:
                answers[i] = _valid_id(items[i][1]) or released_answer(experiment, items[i][1])
            return
        experiment_id, bucket_version, min_version = (
            experiment.id,
            experiment.bucket_version,
            experiment.min_bucket_version,
        )
        unusual = experiment.forced_arms.keys() if not live.targeting.hash_attribute else None
        plain = scope.closed is None and live.targeting.condition is None  # hash, and nothing else
        cache_get = self.cache.get
        arm_of = live.plan.arm_of
        arms = experiment.arms
        now_ms = scope.now_ms
        for i in indexes:
            _, participant_id, attributes = items[i]
            unit_id = participant_id
            if unusual is None or participant_id in unusual or not 0 < len(participant_id) <= _SHORT_ID_CHARS:
                identity = self._identify(live, participant_id, attributes)
                if not isinstance(identity, str):  # the participant's answer
                    answers[i] = identity
                    continue
                unit_id = identity
            cache_key = (experiment_id, bucket_version, min_version, unit_id)
            cached = cache_get(cache_key)
            if cached is not None:  # a stored row never changes: no Redis call
                arm_index, first_seen_ms = cached
                fields = (
                    experiment_id,
                    participant_id,
                    _STICKY,
                    bucket_version,
                    arms[arm_index],
                    arm_index,
                    first_seen_ms,
                    True,
                )
                answers[i] = _new(AssignmentResult, fields)
                continue
            proposed: int | None
            if plain:
                arm_index = arm_of(unit_id)
                proposed, fallback = (arm_index, _NOT_RUNNING) if arm_index >= 0 else (None, _EXCLUSION[arm_index])
            else:
                proposed, fallback = self._proposal(scope, live, participant_id, unit_id, attributes)
            pending = (experiment, participant_id, proposed, now_ms, fallback, cache_key, unit_id)
            answers[i] = _new(PendingClaim, pending)  # PendingClaim(*pending), without its slow __new__

    def _identify(
        self, live: LiveExperiment, participant_id: str, attributes: Attributes | None
    ) -> str | AssignmentResult | AssignsvcError:
        """The id hashed and stored for a participant, or its answer without one: its id's
        error, its forced arm, MISSING_HASH_ATTRIBUTE, or the hash attribute value's error."""
        invalid = _valid_id(participant_id)
        if invalid is not None:
            return invalid
        experiment = live.experiment
        forced = experiment.forced_arms.get(participant_id)
        if forced is not None:
            return self._forced(experiment, participant_id, forced)
        attribute = live.targeting.hash_attribute
        if not attribute:
            return participant_id
        found = live.targeting.unit_id(participant_id, attributes or EMPTY_ATTRIBUTES)
        if found is None:
            return AssignmentResult(
                experiment.id, participant_id, AssignmentReason.MISSING_HASH_ATTRIBUTE, experiment.bucket_version
            )
        return _unit_id_error(found, attribute) or found

    def _proposal(
        self,
        scope: ExperimentScope,
        live: LiveExperiment,
        participant_id: str,
        unit_id: str,
        attributes: Attributes | None,
    ) -> tuple[int | None, AssignmentReason]:
        """(the arm to propose or None, the answer if nothing is stored) for a participant
        with no cached row: nothing while the experiment is closed; nothing if the condition
        says no (the claim is then a read: a stored arm is still answered, sticky over
        eligibility as GrowthBook's sticky bucketing, and nothing is written); else the hash's."""
        if scope.closed is not None:
            return None, scope.closed
        condition = live.targeting.condition
        if condition is not None and not condition(_with_id(attributes, participant_id), self._registry.groups):
            return None, AssignmentReason.NOT_ELIGIBLE
        arm_index = live.plan.arm_of(unit_id)
        if arm_index < 0:
            return None, _EXCLUSION[arm_index]
        return arm_index, _NOT_RUNNING

    def _finish(self, pending: PendingClaim, claim: Claim) -> AssignmentResult:
        finished = self._finish_many((pending,), (claim,))[0]
        assert isinstance(finished, AssignmentResult)  # _finish_many answers no errors
        return finished

    def _finish_many(
        self, pending: Sequence[PendingClaim], claims: Sequence[Claim]
    ) -> list[AssignmentResult | AssignsvcError]:
        """Each claim's answer; stored rows (created or existing) go to the sticky cache."""
        stored: list[tuple[CacheKey, tuple[int, int]]] = []
        keep = stored.append
        result = self._result
        results: list[AssignmentResult | AssignsvcError] = []
        answer = results.append
        for p, claim in zip(pending, claims, strict=True):
            kind = claim.kind
            if kind is _CREATED or kind is _EXISTING:
                keep((p.cache_key, (claim.arm_index, claim.first_seen_ms)))
            answer(result(p.experiment, p.participant_id, claim, p.fallback))
        self.cache.put_many(stored)
        return results

    async def get_assignment(
        self,
        experiment_id: str,
        participant_id: str,
        attributes: Attributes | None = None,
        time_remaining_s: float | None = None,
    ) -> AssignmentResult:
        """The forced arm, else the stored arm at the current bucket version; NotFoundError if none.

        With a hash attribute, the row is looked up under that attribute's value (without it:
        MISSING_HASH_ATTRIBUTE, not in the experiment, as Assign answers). It only
        reads, so no policy applies: a store failure (or the deadline) is StoreUnavailableError."""
        live = self._live(experiment_id, participant_id)
        if live.experiment.released_arm_id:
            return released_answer(live.experiment, participant_id)
        forced = live.experiment.forced_arms.get(participant_id)
        if forced is not None:
            return self._forced(live.experiment, participant_id, forced)
        unit_id = live.targeting.unit_id(participant_id, attributes or EMPTY_ATTRIBUTES)
        if unit_id is None:  # as Assign answers: no row can be looked up without the attribute
            experiment = live.experiment
            return AssignmentResult(
                experiment.id, participant_id, AssignmentReason.MISSING_HASH_ATTRIBUTE, experiment.bucket_version
            )
        invalid = _unit_id_error(unit_id, live.targeting.hash_attribute)
        if invalid is not None:
            raise invalid
        budget = self._store_budget(time_remaining_s)
        claim = await bounded(self._store.lookup(live.experiment, unit_id), budget, "lookup")
        if claim.kind is not _EXISTING:
            raise NotFoundError("assignment", f"{experiment_id}/{participant_id}")
        return self._result(live.experiment, participant_id, claim, AssignmentReason.STICKY)

    @staticmethod
    def _forced(experiment: Experiment, participant_id: str, arm_id: str) -> AssignmentResult:
        index = experiment.arm_index(arm_id)  # validated to exist when stored
        return AssignmentResult(
            experiment.id,
            participant_id,
            AssignmentReason.FORCED,
            experiment.bucket_version,
            arm=experiment.arms[index],
            arm_index=index,
        )

    @staticmethod
    def _result(
        experiment: Experiment, participant_id: str, claim: Claim, fallback: AssignmentReason
    ) -> AssignmentResult:
        kind = claim.kind
        if kind is _CREATED or kind is _EXISTING:
            reason = _NEW_ASSIGNMENT if kind is _CREATED else _STICKY
            arm_index = claim.arm_index
            fields = (
                experiment.id,
                participant_id,
                reason,
                claim.bucket_version,
                experiment.arms[arm_index],
                arm_index,
                claim.first_seen_ms,
                True,
            )
            return _new(AssignmentResult, fields)  # AssignmentResult(*fields), without its slow __new__
        if kind is _BLOCKED:
            return AssignmentResult(
                experiment.id,
                participant_id,
                AssignmentReason.BLOCKED_BY_MIN_BUCKET_VERSION,
                claim.bucket_version,
                persisted=True,
            )
        return AssignmentResult(experiment.id, participant_id, fallback, experiment.bucket_version, persisted=True)


def released_answer(experiment: Experiment, participant_id: str) -> AssignmentResult:
    """A stopped experiment's released arm, for everyone: nothing read, written or counted."""
    index = experiment.arm_index(experiment.released_arm_id)  # validated to exist when stored
    return AssignmentResult(
        experiment.id,
        participant_id,
        AssignmentReason.RELEASED,
        experiment.bucket_version,
        arm=experiment.arms[index],
        arm_index=index,
    )


def store_failure_answer(pending: PendingClaim, error: StoreUnavailableError) -> AssignmentResult:
    """The answer when the claim failed, by the experiment's policy.

    FAIL_OPEN: what the claim would have answered had nothing been stored (the hash's arm
    as NEW_ASSIGNMENT, or the exclusion / not-eligible / closed reason), persisted=False,
    nothing written or cached. FAIL_CLOSED, and a preassigned experiment (no hash gives
    its arms): StoreUnavailableError saying so.
    """
    experiment = pending.experiment
    if experiment.redis_failure_policy is RedisFailurePolicy.FAIL_OPEN:
        if experiment.type is not ExperimentType.PREASSIGNED:
            FAIL_OPEN_ANSWERS.inc()
            arm = pending.proposed_arm
            if arm is None:
                return AssignmentResult(
                    experiment.id, pending.participant_id, pending.fallback, experiment.bucket_version
                )
            return AssignmentResult(
                experiment.id,
                pending.participant_id,
                AssignmentReason.NEW_ASSIGNMENT,
                experiment.bucket_version,
                arm=experiment.arms[arm],
                arm_index=arm,
            )
        why = "it fails open, but a preassigned experiment's arms are only in Redis"
    else:
        why = "it fails closed (redis_failure_policy), so no arm is answered that is not stored"
    raise StoreUnavailableError(
        f"cannot assign {pending.participant_id!r} in experiment {experiment.id!r}: {error.message}; {why}"
    )


def _failure_answer(pending: PendingClaim, error: StoreUnavailableError) -> AssignmentResult | AssignsvcError:
    """store_failure_answer, or its StoreUnavailableError as the item's own answer."""
    try:
        return store_failure_answer(pending, error)
    except StoreUnavailableError as refused:
        return refused


def _id_violations(participant_id: str) -> list[FieldViolation]:
    """What the id rules refuse in a participant id (nothing for a short one: no encoding)."""
    if 0 < len(participant_id) <= _SHORT_ID_CHARS:
        return []
    return participant_id_violations(participant_id, "participant_id")


def _valid_id(participant_id: str) -> InvalidArgumentError | None:
    """The error for a participant id the id rules refuse, else None."""
    violations = _id_violations(participant_id)
    return InvalidArgumentError(violations) if violations else None


def _unit_id_error(unit_id: str, attribute: str) -> InvalidArgumentError | None:
    """A hash attribute's value is stored as the participant's key: the id rules apply to it."""
    if len(unit_id) * 4 > MAX_PARTICIPANT_ID_BYTES:  # cheap bound first: at most 4 bytes a character
        violations = participant_id_violations(unit_id, f"attributes.{attribute}")
        if violations:
            return InvalidArgumentError(violations)
    return None


def _with_id(attributes: Attributes | None, participant_id: str) -> Attributes:
    """The attributes a condition sees: GrowthBook's `id` attribute is the participant id
    unless the caller sent one (so an imported `{"id": {"$inGroup": ...}}` works as in the SDK)."""
    if attributes is None:
        return {"id": participant_id}
    if "id" in attributes:
        return attributes
    return {**attributes, "id": participant_id}
