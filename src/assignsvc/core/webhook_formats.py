"""Webhook body formats: each assignsvc event as the nearest event of a seed system.

A receiver written from Evidential's, Eppo's, Intelligems' or GrowthBook's documentation
works unchanged when its webhook has that `format`: the event names, body fields,
signature and headers are that system's. Rendering happens once per event and webhook
(the body is stored with the delivery); signing happens at each attempt (secrets
rotate). An event a format has no name for renders as not sent, with the reason the
delivery log shows. Pure: times, ids and the experiment's API form are arguments.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from assignsvc.core import growthbook_shape
from assignsvc.core.events import (
    DEFAULT_FORMAT,
    EVENT_TYPES,
    EXPERIMENT_CREATED,
    EXPERIMENT_DELETED,
    EXPERIMENT_RERANDOMIZED,
    EXPERIMENT_STATUS_UPDATED,
    EXPERIMENT_UPDATED,
    EXPERIMENT_WARNING,
    WEBHOOK_TEST,
    canonical_json,
    envelope,
    event_data,
)
from assignsvc.core.scoping import local_part
from assignsvc.core.signing import body_signature
from assignsvc.errors import FieldViolation

ASSIGNSVC = DEFAULT_FORMAT
EVIDENTIAL = "evidential"
EPPO = "eppo"
INTELLIGEMS = "intelligems"
GROWTHBOOK = "growthbook"
FORMATS = (ASSIGNSVC, EVIDENTIAL, EPPO, INTELLIGEMS, GROWTHBOOK)

INTELLIGEMS_SIGNATURE_HEADER = "X-Intelligems-Signature"
# Where the HTTP edge serves Evidential's client routes (api/http/evidential.py mounts them
# here): an Evidential body's experiment_url names the GET experiment route below it.
EVIDENTIAL_PREFIX = "/evidential/v1"
# GrowthBook's event-webhook API version this shape follows.
GROWTHBOOK_API_VERSION = "2024-07-31"


@dataclass(frozen=True, slots=True)
class Event:
    """What every format renders from: the event and the experiment as the API returns it."""

    id: str
    type: str
    created_ms: int
    experiment: Mapping[str, Any] | None  # proto field names; None for webhook.test
    detail: Mapping[str, Any] = field(default_factory=dict)
    datasource: str = "default"
    experiment_url: str = ""  # where Evidential's receiver GETs the experiment


@dataclass(frozen=True, slots=True)
class Rendered:
    """The body to store and send, or why this webhook gets nothing for the event."""

    event: str = ""  # the format's own event name ('' when not sent)
    body: str = ""
    not_sent: str = ""


@dataclass(frozen=True, slots=True)
class Limits:
    """A format's own caps on the shared delivery settings (None: the server's)."""

    timeout_s: float | None = None
    max_attempts: int | None = None


def evidential_experiment_url(public_url: str, experiment_id: str) -> str:
    """The experiment_url of an Evidential body: absolute when the server knows its public URL."""
    return f"{public_url.rstrip('/')}{EVIDENTIAL_PREFIX}/experiments/{experiment_id}"


def rfc3339(ms: int) -> str:
    """A time as assignsvc's bodies write it (UTC, milliseconds, +00:00)."""
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.UTC).isoformat(timespec="milliseconds")


# --- event names ---------------------------------------------------------------------------
# assignsvc event -> the format's event: a name, or a function of the event giving the
# name or '' (not sent). An event missing from a format's table is never sent to it.
Namer = str | Callable[[Event], str]


def _action(names: Mapping[str, str]) -> Callable[[Event], str]:
    return lambda event: names.get(str(event.detail.get("action", "")), "")


def _committed_at_creation(event: Event) -> str:
    status = str((event.experiment or {}).get("status", ""))
    return "" if status == "EXPERIMENT_STATUS_DRAFT" else "experiment.created"


def _committed_by_start(event: Event) -> str:
    started = event.detail.get("action") == "started" and event.detail.get("previous_status") == "DRAFT"
    return "experiment.created" if started else ""


def _srm_only(name: str) -> Callable[[Event], str]:
    return lambda event: name if (event.detail.get("warning") or {}).get("type") == "srm" else ""


NAMES: dict[str, dict[str, Namer]] = {
    ASSIGNSVC: {name: name for name in EVENT_TYPES},
    # Evidential sends one event, when an experiment is committed (assignments may start).
    EVIDENTIAL: {EXPERIMENT_CREATED: _committed_at_creation, EXPERIMENT_STATUS_UPDATED: _committed_by_start},
    EPPO: {
        EXPERIMENT_CREATED: "experiment.configuration.updated",
        EXPERIMENT_UPDATED: "experiment.configuration.updated",
        EXPERIMENT_RERANDOMIZED: "experiment.configuration.updated",
        EXPERIMENT_STATUS_UPDATED: "experiment.status.updated",
        EXPERIMENT_DELETED: "experiment.status.updated",
        EXPERIMENT_WARNING: _srm_only("experiment.calculated_metrics.updated"),
    },
    INTELLIGEMS: {
        EXPERIMENT_CREATED: "create",
        EXPERIMENT_UPDATED: "update",
        EXPERIMENT_RERANDOMIZED: "update",
        EXPERIMENT_STATUS_UPDATED: _action(
            {"started": "start", "resumed": "start", "paused": "pause", "stopped": "end", "released": "update"}
        ),
        EXPERIMENT_DELETED: "delete",
        WEBHOOK_TEST: "test",
    },
    GROWTHBOOK: {
        EXPERIMENT_CREATED: "experiment.created",
        EXPERIMENT_UPDATED: "experiment.updated",
        EXPERIMENT_STATUS_UPDATED: "experiment.updated",
        EXPERIMENT_RERANDOMIZED: "experiment.updated",
        EXPERIMENT_DELETED: "experiment.deleted",
        EXPERIMENT_WARNING: _srm_only("experiment.warning"),
    },
}

LIMITS = {INTELLIGEMS: Limits(timeout_s=10.0, max_attempts=5)}


def carried(format_name: str) -> tuple[str, ...]:
    """The assignsvc events a format has a name for (what its event filter may list)."""
    return tuple(name for name in EVENT_TYPES if name in NAMES.get(format_name, {}))


def format_violations(format_name: str, field_name: str = "webhook.format") -> list[FieldViolation]:
    """One violation when the format is not one of FORMATS."""
    if format_name in FORMATS:
        return []
    return [FieldViolation(field_name, f"unknown format {format_name!r}; valid: {', '.join(FORMATS)}")]


def filter_violations(
    format_name: str, events: Sequence[str], field_name: str = "webhook.events"
) -> list[FieldViolation]:
    """One violation per known event the format cannot carry, listing those it can."""
    valid = carried(format_name)
    return [
        FieldViolation(
            f"{field_name}[{i}]",
            f"the {format_name} format has no event for {name!r}; it carries: {', '.join(valid)}",
        )
        for i, name in enumerate(events)
        if name in EVENT_TYPES and name not in valid
    ]


def limits(format_name: str) -> Limits:
    """The format's caps on timeout and attempts."""
    return LIMITS.get(format_name, Limits())


# --- bodies --------------------------------------------------------------------------------


def render(format_name: str, event: Event) -> Rendered:
    """The format's body for the event, or why it is not sent."""
    namer = NAMES.get(format_name, {}).get(event.type)
    name = namer(event) if callable(namer) else (namer or "")
    if not name:
        why = _NOT_SENT.get((format_name, event.type), f"the {format_name} format has no event for {event.type}")
        return Rendered(not_sent=f"not sent: {why}")
    return Rendered(name, _BODIES[format_name](name, event))


_NOT_SENT = {
    (
        EVIDENTIAL,
        EXPERIMENT_CREATED,
    ): "a draft is not committed yet; Evidential's experiment.created is sent when it starts",
    (EVIDENTIAL, EXPERIMENT_STATUS_UPDATED): "Evidential's experiment.created is sent once, when a draft starts",
    (EPPO, EXPERIMENT_WARNING): "the eppo format carries only sample-ratio-mismatch warnings",
    (GROWTHBOOK, EXPERIMENT_WARNING): "the growthbook format carries only sample-ratio-mismatch warnings",
}


def _assignsvc(name: str, event: Event) -> str:
    data = event_data(event.experiment, event.detail)
    return canonical_json(envelope(event.id, name, rfc3339(event.created_ms), data))


def _local_id(event: Event) -> str:
    return local_part(str((event.experiment or {}).get("id", "")))


def _evidential(name: str, event: Event) -> str:
    # assignsvc has no organizations: the datasource stands for both.
    body = {
        "type": name,
        "organization_id": event.datasource,
        "datasource_id": event.datasource,
        "experiment_id": _local_id(event),
        "experiment_url": event.experiment_url,
    }
    return _compact(body)


def _eppo(name: str, event: Event) -> str:
    data: dict[str, Any] = {"experiment_id": _local_id(event), "experiment_key": _local_id(event)}
    if name == "experiment.calculated_metrics.updated":
        data["meta_data"] = {
            "status": "success",
            "is_manual_refresh": False,
            "is_data_updated": False,
            "time_taken_seconds": 0,
            "is_traffic_imbalance": True,
            "assignments_scan_start_date": (event.experiment or {}).get("start_time"),
            "assignments_scan_end_date": rfc3339(event.created_ms),
        }
    return _compact({"event": name, "data": data})


def _intelligems(name: str, event: Event) -> str:
    experiment = event.experiment or {}
    body = {
        "id": event.id,
        "action_type": name,
        "experience_id": _local_id(event) or None,
        "experience_name": experiment.get("name"),
        "experience_type": "experiment" if event.experiment is not None else None,
        "timestamp": rfc3339(event.created_ms),
        "user_email": None,  # assignsvc does not record who made a change
    }
    return _compact(body)


def _growthbook(name: str, event: Event) -> str:
    experiment = event.experiment or {}
    data: dict[str, Any]
    if name == "experiment.warning":
        warning = event.detail.get("warning") or {}
        data = {
            "object": {
                "type": "srm",
                "experimentName": experiment.get("name"),
                "experimentId": _local_id(event),
                "threshold": warning.get("threshold"),
            }
        }
    else:
        shape = growthbook_shape.experiment_object(experiment, archived=event.type == EXPERIMENT_DELETED)
        data = {"object": shape}
        previous = _previous_attributes(event)
        if name == "experiment.updated" and previous:
            data["previous_attributes"] = previous
    body = {
        "event": name,
        "object": "experiment",
        "api_version": GROWTHBOOK_API_VERSION,
        "created": event.created_ms,
        "data": data,
        "user": None,
        "tags": [],
        "environments": [],
        "containsSecrets": False,
    }
    return _compact(body)


def _previous_attributes(event: Event) -> dict[str, Any]:
    """The changed fields' earlier values, where the event says them in GrowthBook's terms."""
    detail = event.detail
    if event.type == EXPERIMENT_STATUS_UPDATED:
        return {"status": growthbook_shape.status_of(str(detail.get("previous_status", "")))}
    if event.type == EXPERIMENT_RERANDOMIZED:
        return {"bucketVersion": detail.get("previous_bucket_version")}
    changes = detail.get("changes") or []
    names = [c.get("old") for c in changes if isinstance(c, Mapping) and c.get("field") == "name"]
    return {"name": names[0]} if names else {}


_BODIES: dict[str, Callable[[str, Event], str]] = {
    ASSIGNSVC: _assignsvc,
    EVIDENTIAL: _evidential,
    EPPO: _eppo,
    INTELLIGEMS: _intelligems,
    GROWTHBOOK: _growthbook,
}


def _compact(value: Any) -> str:
    """Keys in the order written, no spaces, UTF-8 as is: what JavaScript's JSON.stringify
    gives, so a receiver re-serializing the parsed body gets these bytes back."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


# --- signing (each attempt) ---------------------------------------------------------------


def hex_hmac(secret: str, message: str) -> str:
    """Hex HMAC-SHA256 keyed by the secret as text (Eppo's and Intelligems' receivers use
    the shared secret string itself as the key)."""
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def signed(
    format_name: str, body: str, newest_secret: str | None, *, sign_body: bool = False
) -> tuple[str, dict[str, str]]:
    """The body as sent and the format's own headers (Standard Webhooks ones are added by
    the caller for every format)."""
    if newest_secret is None:
        return body, {}
    if format_name == INTELLIGEMS:
        return body, {INTELLIGEMS_SIGNATURE_HEADER: hex_hmac(newest_secret, body)}
    if format_name not in (EPPO, ASSIGNSVC) or (format_name == ASSIGNSVC and not sign_body):
        return body, {}
    data = json.loads(body).get("data")
    if not isinstance(data, dict):  # rendered before its webhook's format changed: sent unsigned
        return body, {}
    if format_name == EPPO:
        return _with_signature(body, hex_hmac(newest_secret, _compact(data))), {}
    return _with_signature(body, body_signature(newest_secret, canonical_json(data))), {}


def _with_signature(body: str, signature: str) -> str:
    """The body with a last field `signature` (the rest byte for byte as rendered)."""
    return body[:-1] + ',"signature":' + json.dumps(signature) + "}"
