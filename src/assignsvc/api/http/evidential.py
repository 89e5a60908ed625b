"""Evidential's client API ("Experiment Integration") under /evidential/v1: a client written
for Evidential works by changing its base URL.

Routes (Evidential's own paths, after the prefix): the list (`X-API-Key` and
`Datasource-ID`), one experiment, its assignments as JSON or CSV, and one participant's
assignment (GET, assigned on the fly unless `create_if_none=false`; POST
`assign_with_filters`, whose properties are the participant's attributes). On experiment
routes the key alone names the caller (a key belongs to one datasource). Bodies and
errors take Evidential's shapes: an unknown or foreign experiment is 404
`{"detail": "Experiment not found or not authorized."}`, a participant not assigned is
200 with `"assignment": null`. The field mapping is documented in docs/http.md.
"""

from __future__ import annotations

import csv
import datetime
import io
import json
from typing import Any

from aiohttp import web

from assignsvc.api.http.app import HttpEdge
from assignsvc.api.http.auth import DATASOURCE_HEADER, Refused, authenticate
from assignsvc.api.http.body import attributes as body_attributes
from assignsvc.api.http.body import read_json
from assignsvc.api.http.errors import HttpRefusalError, status_response
from assignsvc.api.scope import caller_datasource, local_part, scoped
from assignsvc.app.access import Refusal
from assignsvc.app.assign import AssignmentResult
from assignsvc.app.export import ExportFilters
from assignsvc.core.model import Experiment, ExperimentStatus, ExperimentType
from assignsvc.core.webhook_formats import EVIDENTIAL_PREFIX
from assignsvc.errors import InvalidArgumentError, NotFoundError
from assignsvc.store.claims import unpack_row

PREFIX = EVIDENTIAL_PREFIX  # one place: webhook bodies name these routes too
_GET = "/assignsvc.v1.ExperimentService/GetExperiment"
_LIST = "/assignsvc.v1.ExperimentService/ListExperiments"
_EXPORT = "/assignsvc.v1.BulkAssignmentService/ExportAssignments"
_ASSIGN = "/assignsvc.v1.AssignmentService/Assign"
NOT_FOUND = {"detail": "Experiment not found or not authorized."}
MAX_AGE_LIMIT = 86_400
DEFAULT_MAX_AGE = 3600
_TRUE = ("1", "true", "t", "yes", "y", "on")
_FALSE = ("0", "false", "f", "no", "n", "off")


def add_routes(edge: HttpEdge) -> None:
    """Register the routes (csv before {participant_id}: Evidential's order, so 'csv' is the export)."""
    facade = _Evidential(edge)
    router = edge.app.router
    router.add_get(f"{PREFIX}/experiments", facade.list_experiments)
    router.add_get(f"{PREFIX}/experiments/{{experiment_id}}", facade.get_experiment)
    router.add_get(f"{PREFIX}/experiments/{{experiment_id}}/assignments", facade.assignments_json)
    router.add_get(f"{PREFIX}/experiments/{{experiment_id}}/assignments/csv", facade.assignments_csv)
    router.add_get(f"{PREFIX}/experiments/{{experiment_id}}/assignments/{{participant_id}}", facade.assignment)
    router.add_post(
        f"{PREFIX}/experiments/{{experiment_id}}/assignments/{{participant_id}}/assign_with_filters",
        facade.assign_with_filters,
    )


def _message(status: int, text: str) -> web.Response:
    return web.json_response({"message": text}, status=status)


def _unprocessable(location: list[Any], text: str, value: Any = None) -> HttpRefusalError:
    """422 in FastAPI's validation shape, as Evidential answers a bad query or body."""
    detail = [{"type": "value_error", "loc": location, "msg": text, "input": value}]
    return HttpRefusalError(web.json_response({"detail": detail}, status=422))


def _iso(ms: int | None) -> str | None:
    """UTC time as Pydantic writes it: ...Z, microseconds only when there are some."""
    if ms is None:
        return None
    moment = datetime.datetime.fromtimestamp(ms / 1000, datetime.UTC)
    return moment.isoformat().replace("+00:00", "Z")


def _csv_time(ms: int) -> str:
    """UTC time as Evidential's CSV writes it: seconds precision, Z."""
    return datetime.datetime.fromtimestamp(ms // 1000, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class _Evidential:
    def __init__(self, edge: HttpEdge) -> None:
        self._edge = edge
        self._use = edge.use_cases

    # --- authentication, in Evidential's words --------------------------------------

    def _admit(self, request: web.Request, method: str, *, key_alone: bool) -> None:
        refused = authenticate(request, self._use.key_ring, method, key_alone=key_alone)
        if refused is not None:
            raise HttpRefusalError(self._refusal(refused, experiment_route=key_alone))

    @staticmethod
    def _refusal(refused: Refused, *, experiment_route: bool) -> web.StreamResponse:
        if refused.kind is None:
            return _message(400, "X-API-Key request header is required.")
        if refused.kind is Refusal.RATE_LIMITED:
            return status_response(refused.status)
        if experiment_route and refused.kind is not Refusal.PERMISSION_DENIED:
            return web.json_response(NOT_FOUND, status=404)  # Evidential never says 403 here
        return _message(403, "X-API-Key is invalid or does not have access to this resource.")

    def _experiment(self, request: web.Request) -> Experiment:
        try:
            return self._use.catalog.get(scoped(request.match_info["experiment_id"]))
        except (NotFoundError, InvalidArgumentError):
            raise HttpRefusalError(web.json_response(NOT_FOUND, status=404)) from None

    # --- routes ----------------------------------------------------------------------

    async def list_experiments(self, request: web.Request) -> web.Response:
        """Route 1: every experiment of the datasource (Datasource-ID required), newest first."""
        if (
            self._use.key_ring is not None
            and request.headers.get("X-API-Key")
            and DATASOURCE_HEADER not in request.headers
        ):
            detail = [{"type": "missing", "loc": ["header", DATASOURCE_HEADER], "msg": "Field required", "input": None}]
            return web.json_response({"detail": detail}, status=422)
        self._admit(request, _LIST, key_alone=False)
        experiments: list[Experiment] = []
        token = ""
        while True:
            page, token = self._use.catalog.list(1000, token, caller_datasource())
            experiments += page
            if not token:
                break
        experiments.sort(key=lambda e: e.create_time_ms, reverse=True)
        return web.json_response({"items": [await self._config(e) for e in experiments]})

    async def get_experiment(self, request: web.Request) -> web.Response:
        """Route 2: one experiment, in any state, if the key's datasource owns it."""
        self._admit(request, _GET, key_alone=True)
        return web.json_response(await self._config(self._experiment(request)))

    async def assignments_json(self, request: web.Request) -> web.StreamResponse:
        """Route 3: every stored assignment, streamed as one JSON document."""
        self._admit(request, _EXPORT, key_alone=True)
        experiment = self._experiment(request)
        chunks = self._use.exporter.export(experiment.id, ExportFilters())
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        first = True
        count = 0
        async for chunk in chunks:
            if first:
                await response.prepare(request)
                head = {"balance_check": None, "experiment_id": local_part(experiment.id)}
                await response.write(json.dumps(head)[:-1].encode() + b', "assignments": [')
            rows = [_row(experiment, row) for row in chunk.rows]
            if rows:
                text = ", ".join(json.dumps(r) for r in rows)
                await response.write(((", " if count else "") + text).encode())
                count += len(rows)
            first = False
        if first:  # no chunk at all: still one document
            await response.prepare(request)
            head = {"balance_check": None, "experiment_id": local_part(experiment.id)}
            await response.write(json.dumps(head)[:-1].encode() + b', "assignments": [')
        await response.write(f'], "sample_size": {count}}}'.encode())
        await response.write_eof()
        return response

    async def assignments_csv(self, request: web.Request) -> web.StreamResponse:
        """Route 4: the same rows as CSV with its header row (LF line ends, minimal quoting)."""
        self._admit(request, _EXPORT, key_alone=True)
        experiment = self._experiment(request)
        chunks = self._use.exporter.export(experiment.id, ExportFilters())
        local_id = local_part(experiment.id)
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/csv; charset=utf-8",
                "Content-Disposition": f'attachment; filename="experiment_{local_id}_assignments.csv"',
            }
        )
        strata: list[str] | None = None
        async for chunk in chunks:
            if strata is None:
                names = {key for row in chunk.rows if row[3] for key in json.loads(row[3])}
                strata = sorted(names)
                await response.prepare(request)
                await response.write(_csv([["participant_id", "arm_id", "arm_name", "created_at", *strata]]))
            lines = []
            for participant, packed, _, stratum in chunk.rows:
                first_seen_ms, index = unpack_row(packed)
                arm = experiment.arms[index]
                values = json.loads(stratum) if stratum else {}
                lines.append([participant.decode(), arm.id, arm.name, _csv_time(first_seen_ms)])
                lines[-1] += [str(values.get(name, "")) for name in strata]
            if lines:
                await response.write(_csv(lines))
        if strata is None:  # no chunk at all: the header row alone
            await response.prepare(request)
            await response.write(_csv([["participant_id", "arm_id", "arm_name", "created_at"]]))
        await response.write_eof()
        return response

    async def assignment(self, request: web.Request) -> web.StreamResponse:
        """Route 5: the participant's arm, assigned now unless create_if_none=false."""
        create = _flag(request, "create_if_none", True)
        max_age = _max_age(request)
        self._admit(request, _ASSIGN, key_alone=True)
        return await self._answer(request, None, create=create, max_age=max_age)

    async def assign_with_filters(self, request: web.Request) -> web.StreamResponse:
        """Route 6: as route 5, the properties being the participant's attributes (conditions)."""
        create = _flag(request, "create_if_none", True)
        self._admit(request, _ASSIGN, key_alone=True)
        body = await read_json(request, empty={}, strict=False)  # as Evidential: any Content-Type
        if not isinstance(body, dict) or set(body) - {"properties"}:
            raise _unprocessable(["body"], "must be an object with only 'properties'", body)
        attributes: dict[str, Any] = {}
        for i, item in enumerate(body.get("properties") or []):
            if (
                not isinstance(item, dict)
                or not isinstance(item.get("field_name"), str)
                or set(item) - {"field_name", "value"}
            ):
                raise _unprocessable(["body", "properties", i], "must be {field_name: str, value: ...}", item)
            value = item.get("value")
            if value is not None and not isinstance(value, str | int | float | bool):
                raise _unprocessable(
                    ["body", "properties", i, "value"], "must be a string, number, boolean or null", value
                )
            attributes[item["field_name"]] = value
        try:
            checked = body_attributes(attributes, "properties")
        except InvalidArgumentError as bad:
            raise _unprocessable(["body", "properties"], bad.message) from None
        return await self._answer(request, checked, create=create, max_age=0)

    async def _answer(
        self, request: web.Request, attributes: dict[str, Any] | None, *, create: bool, max_age: int
    ) -> web.StreamResponse:
        experiment = self._experiment(request)
        participant_id = request.match_info["participant_id"]
        assigner = self._use.assigner
        result: AssignmentResult | None
        try:
            if create:
                result = await assigner.assign(experiment.id, participant_id, attributes)
            else:
                result = await assigner.get_assignment(experiment.id, participant_id, attributes)
        except NotFoundError as missing:
            if missing.kind == "experiment":
                raise HttpRefusalError(web.json_response(NOT_FOUND, status=404)) from None
            result = None
        except InvalidArgumentError as bad:
            raise _unprocessable(["path", "participant_id"], bad.message, participant_id) from None
        body: dict[str, Any] = {
            "experiment_id": local_part(experiment.id),
            "participant_id": participant_id,
            "assignment": None,
        }
        headers = {}
        if result is not None and result.arm is not None:
            body["assignment"] = {
                "arm_id": result.arm.id,
                "participant_id": participant_id,
                "cluster_key": None,
                "arm_name": result.arm.name,
                "created_at": _iso(result.first_seen_ms or None),
                "strata": [],
                "observed_at": None,
                "outcome": None,
                "autofailed_outcome": None,
                "context_values": None,
            }
            if max_age > 0:
                headers["Cache-Control"] = f"private, max-age={max_age}"
        return web.json_response(body, headers=headers)

    async def _config(self, experiment: Experiment) -> dict[str, Any]:
        """Evidential's ExperimentConfig for one of ours (docs/http.md has the mapping)."""
        stats = await self._use.catalog.stats(experiment.id, None, with_strata=False)
        arms = [
            {"arm_id": a.id, "arm_name": a.name, "arm_description": None, "arm_weight": a.weight * 100}
            for a in experiment.arms
        ]
        stopped_at, reason = _stopped(experiment)
        return {
            "experiment_id": local_part(experiment.id),
            "datasource_id": caller_datasource(),
            "state": "assigned" if experiment.status is ExperimentStatus.DRAFT else "committed",
            "stopped_assignments_at": stopped_at,
            "stopped_assignments_reason": reason,
            "design_spec": {
                "experiment_type": "freq_preassigned"
                if experiment.type is ExperimentType.PREASSIGNED
                else "freq_online",
                "experiment_name": experiment.name,
                "description": "",
                "design_url": None,
                "start_date": _iso(experiment.start_time_ms or experiment.create_time_ms),
                "end_date": _iso(experiment.end_time_ms),
                "arms": arms,
                "strata": [],
                "metrics": [],
                "filters": [],
                "desired_n": None,
                "power": 0.8,
                "alpha": 0.05,
                "fstat_thresh": 0.6,
            },
            "power_analyses": None,
            "assign_summary": {
                "balance_check": None,
                "sample_size": stats.total,
                "arm_sizes": [
                    {"arm": {**arm, "arm_weight": None}, "size": count, "cluster_count": None}
                    for arm, count in zip(arms, stats.counts, strict=True)
                ],
            },
            "webhooks": [],
            "decision": "",
            "impact": "",
        }


def _stopped(experiment: Experiment) -> tuple[str | None, str | None]:
    """Evidential's stopped_assignments_at / _reason for an experiment taking no new participants."""
    if experiment.type is ExperimentType.PREASSIGNED:
        return _iso(experiment.create_time_ms), "preassigned"
    if experiment.status in (ExperimentStatus.STOPPED, ExperimentStatus.PAUSED):
        return _iso(experiment.update_time_ms), "manual"
    end = experiment.end_time_ms
    if end is not None and experiment.update_time_ms and end <= _now_ms():
        return _iso(end), "end_date"
    return None, None


def _now_ms() -> int:
    return int(datetime.datetime.now(datetime.UTC).timestamp() * 1000)


def _row(experiment: Experiment, row: tuple[bytes, int, int, str]) -> dict[str, Any]:
    participant, packed, _, stratum = row
    first_seen_ms, index = unpack_row(packed)
    arm = experiment.arms[index]
    strata = None
    if stratum:
        values = json.loads(stratum)
        strata = [{"field_name": k, "strata_value": None if v is None else str(v)} for k, v in sorted(values.items())]
    return {
        "participant_id": participant.decode(),
        "arm_id": arm.id,
        "arm_name": arm.name,
        "created_at": _iso(first_seen_ms),
        "strata": strata if strata is not None else [],
        "observed_at": None,
        "outcome": None,
        "context_values": None,
    }


def _csv(rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue().encode()


def _flag(request: web.Request, name: str, default: bool) -> bool:
    text = request.query.get(name)
    if text is None:
        return default
    if text.lower() in _TRUE:
        return True
    if text.lower() in _FALSE:
        return False
    raise _unprocessable(["query", name], "Input should be a valid boolean", text)


def _max_age(request: web.Request) -> int:
    text = request.query.get("max_age")
    if text is None:
        return DEFAULT_MAX_AGE
    try:
        value = int(text)
    except ValueError:
        raise _unprocessable(["query", "max_age"], "Input should be a valid integer", text) from None
    if not 0 <= value <= MAX_AGE_LIMIT:
        raise _unprocessable(["query", "max_age"], f"Input should be between 0 and {MAX_AGE_LIMIT}", text)
    return value
