"""OpenFeature's Remote Evaluation Protocol (OFREP): every OpenFeature SDK's stock OFREP
provider evaluates assignsvc experiments as flags, with no generated code.

Flag key = experiment id; `context.targetingKey` = participant id; the rest of the
context = the participant's attributes (conditions, hash attribute). An evaluation is an
Assign (sticky, stored, counted). Value = the arm's value, variant = the arm id; reason
SPLIT for an arm chosen by the hash (new or stored), TARGETING_MATCH for a forced arm,
STATIC for the released arm of a stopped experiment (everyone's value), DISABLED when
the experiment takes no one now, DEFAULT (no value: the caller's default) when the
participant is not in it; metadata carries the bucket version, `persisted` and
our own reason. Errors are the spec's: FLAG_NOT_FOUND (404), TARGETING_KEY_MISSING,
INVALID_CONTEXT and PARSE_ERROR (400), 401/403 without a body, 429 with Retry-After.
The bulk evaluation answers every experiment of the caller's datasource with an ETag;
If-None-Match with the same ETag is 304.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from aiohttp import web

from assignsvc.api.http.app import HttpEdge
from assignsvc.api.http.auth import authenticate
from assignsvc.api.http.body import attributes as body_attributes
from assignsvc.api.http.body import read_json
from assignsvc.api.http.errors import HttpRefusalError, status_response
from assignsvc.api.scope import caller_datasource, local_part, scoped
from assignsvc.app.access import Refusal
from assignsvc.app.assign import AssignmentResult
from assignsvc.core.model import AssignmentReason, Experiment
from assignsvc.errors import AssignsvcError, InvalidArgumentError, NotFoundError, StoreUnavailableError

PREFIX = "/ofrep/v1/evaluate/flags"
_ASSIGN = "/assignsvc.v1.AssignmentService/Assign"
_SPLIT = (AssignmentReason.NEW_ASSIGNMENT, AssignmentReason.STICKY)
_DISABLED = (
    AssignmentReason.EXPERIMENT_NOT_RUNNING,
    AssignmentReason.EXPERIMENT_NOT_STARTED,
    AssignmentReason.EXPERIMENT_ENDED,
)
_ARM_REASONS = {AssignmentReason.RELEASED: "STATIC"}  # OpenFeature: a value that is the same for everyone
MAX_BULK_FLAGS = 1000


def add_routes(edge: HttpEdge) -> None:
    """Register the single and the bulk evaluation."""
    ofrep = _Ofrep(edge)
    edge.app.router.add_post(f"{PREFIX}/{{key}}", ofrep.evaluate)
    edge.app.router.add_post(PREFIX, ofrep.evaluate_all)


class _EvaluationError(Exception):
    def __init__(self, status: int, code: str, details: str) -> None:
        super().__init__(details)
        self.status, self.code, self.details = status, code, details


def _failure(key: str | None, failure: _EvaluationError) -> web.Response:
    body: dict[str, Any] = {"errorCode": failure.code, "errorDetails": failure.details}
    if key is not None:
        body = {"key": key, **body}
    return web.json_response(body, status=failure.status)


def success(key: str, result: AssignmentResult) -> dict[str, Any]:
    """One evaluation's answer (OFREP evaluationSuccess)."""
    metadata: dict[str, Any] = {
        "bucketVersion": result.bucket_version,
        "persisted": result.persisted,
        "assignsvcReason": result.reason.name,
    }
    arm = result.arm
    if arm is None:
        reason = "DISABLED" if result.reason in _DISABLED else "DEFAULT"
        return {"key": key, "reason": reason, "variant": None, "metadata": metadata}
    reason = "SPLIT" if result.reason in _SPLIT else _ARM_REASONS.get(result.reason, "TARGETING_MATCH")
    return {"key": key, "reason": reason, "variant": arm.id, "value": arm.resolved_value, "metadata": metadata}


class _Ofrep:
    def __init__(self, edge: HttpEdge) -> None:
        self._use = edge.use_cases

    def _admit(self, request: web.Request) -> None:
        refused = authenticate(request, self._use.key_ring, _ASSIGN, key_alone=True)
        if refused is None:
            return
        if refused.kind is Refusal.RATE_LIMITED:
            raise HttpRefusalError(status_response(refused.status))
        status = 403 if refused.kind is Refusal.PERMISSION_DENIED else 401
        raise HttpRefusalError(web.Response(status=status))

    async def _context(self, request: web.Request) -> tuple[str, dict[str, Any]]:
        """(participant id, attributes) from the body's context; _EvaluationError when unusable."""
        try:
            body = await read_json(request, empty={})
        except HttpRefusalError as refusal:
            if refusal.response.status == 400:
                raise _EvaluationError(400, "PARSE_ERROR", "the body is not valid JSON") from None
            raise
        if not isinstance(body, dict):
            raise _EvaluationError(400, "PARSE_ERROR", "the body must be a JSON object")
        context = body.get("context", {})
        if not isinstance(context, dict):
            raise _EvaluationError(400, "INVALID_CONTEXT", "context must be an object")
        attributes = dict(context)
        targeting_key = attributes.pop("targetingKey", None)
        if targeting_key is None or targeting_key == "":
            raise _EvaluationError(
                400, "TARGETING_KEY_MISSING", "context.targetingKey (the participant id) is required"
            )
        if not isinstance(targeting_key, str):
            raise _EvaluationError(400, "INVALID_CONTEXT", "context.targetingKey must be a string")
        try:
            return targeting_key, body_attributes(attributes, "context")
        except InvalidArgumentError as bad:
            raise _EvaluationError(400, "INVALID_CONTEXT", bad.message) from None

    async def evaluate(self, request: web.Request) -> web.StreamResponse:
        """POST /ofrep/v1/evaluate/flags/{key}: one flag."""
        key = request.match_info["key"]
        self._admit(request)
        try:
            participant_id, attributes = await self._context(request)
            result = await self._assign(scoped(key), participant_id, attributes)
        except _EvaluationError as failure:
            return _failure(key, failure)
        return web.json_response(success(key, result))

    async def _assign(self, experiment_id: str, participant_id: str, attributes: dict[str, Any]) -> AssignmentResult:
        try:
            return await self._use.assigner.assign(experiment_id, participant_id, attributes or None)
        except NotFoundError:
            raise _EvaluationError(404, "FLAG_NOT_FOUND", f"no flag {local_part(experiment_id)!r}") from None
        except InvalidArgumentError as bad:
            raise _classify(bad) from None

    async def evaluate_all(self, request: web.Request) -> web.StreamResponse:
        """POST /ofrep/v1/evaluate/flags: every experiment of the caller's datasource."""
        self._admit(request)
        try:
            participant_id, attributes = await self._context(request)
        except _EvaluationError as failure:
            return _failure(None, failure)
        experiments: list[Experiment] = []
        token = ""
        while len(experiments) < MAX_BULK_FLAGS:
            page, token = self._use.catalog.list(MAX_BULK_FLAGS, token, caller_datasource())
            experiments += page
            if not token:
                break
        items = [(e.id, participant_id, attributes or None) for e in experiments[:MAX_BULK_FLAGS]]
        outcomes = await self._use.assigner.assign_many(items) if items else []
        flags = []
        for (experiment_id, _, _), outcome in zip(items, outcomes, strict=True):
            key = local_part(experiment_id)
            if isinstance(outcome, AssignmentResult):
                flags.append(success(key, outcome))
            else:
                flags.append(_item_failure(key, outcome))
        etag = _etag(flags)
        if etag in _etags(request.headers.get("If-None-Match", "")):
            return web.Response(status=304, headers={"ETag": etag})
        return web.json_response({"flags": flags}, headers={"ETag": etag})


def _classify(bad: InvalidArgumentError) -> _EvaluationError:
    fields = [v.field for v in bad.violations]
    if any(f == "participant_id" for f in fields):
        return _EvaluationError(
            400, "TARGETING_KEY_MISSING" if "is required" in bad.message else "INVALID_CONTEXT", bad.message
        )
    if any(f == "experiment_id" for f in fields):
        return _EvaluationError(404, "FLAG_NOT_FOUND", bad.message)
    return _EvaluationError(400, "INVALID_CONTEXT", bad.message)


def _item_failure(key: str, error: AssignsvcError) -> dict[str, Any]:
    if isinstance(error, NotFoundError):
        return {"key": key, "errorCode": "FLAG_NOT_FOUND", "errorDetails": error.message}
    if isinstance(error, InvalidArgumentError):
        failure = _classify(error)
        return {"key": key, "errorCode": failure.code, "errorDetails": failure.details}
    if isinstance(error, StoreUnavailableError):
        return {"key": key, "errorCode": "GENERAL", "errorDetails": "the store is unavailable; retry"}
    return {"key": key, "errorCode": "GENERAL", "errorDetails": error.message}


def _etag(flags: list[dict[str, Any]]) -> str:
    """A strong ETag of what a client acts on (key, reason, variant, value, error): the same
    context gives the same one while the experiments and the participant's arms stay."""
    stable = [{k: f.get(k) for k in ("key", "reason", "variant", "value", "errorCode")} for f in flags]
    digest = hashlib.sha256(json.dumps(stable, sort_keys=True).encode()).hexdigest()[:32]
    return f'"{digest}"'


def _etags(header: str) -> set[str]:
    return {tag.strip().removeprefix("W/") for tag in header.split(",") if tag.strip()}
