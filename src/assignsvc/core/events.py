"""Webhook events: the names, the one JSON envelope, and the webhook model.

Pure: the event id, times and the experiment's API form are arguments, so the
envelope a receiver gets is a function of what was stored.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from typing import Any

from assignsvc.core import lifecycle
from assignsvc.core.model import Experiment
from assignsvc.errors import FieldViolation

API_VERSION = "2026-11-01"

EXPERIMENT_CREATED = "experiment.created"
EXPERIMENT_UPDATED = "experiment.updated"
EXPERIMENT_STATUS_UPDATED = "experiment.status.updated"
EXPERIMENT_DELETED = "experiment.deleted"
EXPERIMENT_RERANDOMIZED = "experiment.rerandomized"
EXPERIMENT_WARNING = "experiment.warning"
WEBHOOK_TEST = "webhook.test"

# Every event a webhook may subscribe to (an empty filter means all of them).
EVENT_TYPES = (
    EXPERIMENT_CREATED,
    EXPERIMENT_UPDATED,
    EXPERIMENT_STATUS_UPDATED,
    EXPERIMENT_DELETED,
    EXPERIMENT_RERANDOMIZED,
    EXPERIMENT_WARNING,
    WEBHOOK_TEST,
)

# core.lifecycle.Action value -> the `action` of experiment.status.updated.
STATUS_ACTIONS = {"start": "started", "pause": "paused", "resume": "resumed", "stop": "stopped"}

# The body format of webhooks stored before formats existed (and the default).
DEFAULT_FORMAT = "assignsvc"

MAX_DESCRIPTION_LENGTH = 500
MAX_TOKEN_LENGTH = 512


def event_filter_violations(events: Sequence[str], field: str = "webhook.events") -> list[FieldViolation]:
    """One violation per unknown or repeated name, listing the valid ones."""
    out = []
    for i, name in enumerate(events):
        if name not in EVENT_TYPES:
            out.append(FieldViolation(f"{field}[{i}]", f"unknown event {name!r}; valid: {', '.join(EVENT_TYPES)}"))
        elif name in events[:i]:
            out.append(FieldViolation(f"{field}[{i}]", f"repeats {name!r}"))
    return out


def matches(events: Sequence[str], event_type: str) -> bool:
    """True when a webhook with this filter receives event_type (webhook.test always does)."""
    return event_type == WEBHOOK_TEST or not events or event_type in events


def canonical_json(value: Any) -> str:
    """The one serialization used for bodies and the body signature: compact, sorted, ASCII."""
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=True)


def envelope(event_id: str, event_type: str, created: str, data: Mapping[str, Any]) -> dict[str, Any]:
    """The body every event shares: id, type, api_version, created (RFC 3339), data."""
    return {"id": event_id, "type": event_type, "api_version": API_VERSION, "created": created, "data": dict(data)}


def event_data(experiment: Mapping[str, Any] | None, detail: Mapping[str, Any]) -> dict[str, Any]:
    """`data`: the experiment as the API returns it under `object`, plus the event's own fields."""
    data: dict[str, Any] = {}
    if experiment is not None:
        data["object"] = dict(experiment)
    data.update(detail)
    return data


# Fields whose change has its own event rather than experiment.updated.
_OWN_EVENT_FIELDS = {"status", "bucket_version", "seed", "min_bucket_version", "released_arm_id"}


def change_events(current: Experiment, updated: Experiment) -> list[tuple[str, dict[str, Any]]]:
    """(type, extra data) of every event one stored change raises, in a fixed order.

    A status change or a released arm is experiment.status.updated (with `action`, and
    `released_arm` while one is released), a new bucket version
    experiment.rerandomized, and any other field change experiment.updated listing
    the changes: `assignsvc apply` may do all three in one write.
    """
    changes = lifecycle.diff(current, updated)
    out: list[tuple[str, dict[str, Any]]] = []
    released = current.released_arm_id != updated.released_arm_id
    if current.status is not updated.status or released:
        action = lifecycle.action_between(current.status, updated.status)
        detail = {
            "action": STATUS_ACTIONS[action.value] if action else "released",
            "previous_status": current.status.name,
        }
        if released or updated.released_arm_id:  # the shipped arm ("" when a release is withdrawn)
            detail["released_arm"] = updated.released_arm_id
        out.append((EXPERIMENT_STATUS_UPDATED, detail))
    if current.bucket_version != updated.bucket_version:
        out.append((EXPERIMENT_RERANDOMIZED, {"previous_bucket_version": current.bucket_version}))
    other = [c for c in changes if c[0] not in _OWN_EVENT_FIELDS]
    if other or (not out and changes):
        out.append(
            (
                EXPERIMENT_UPDATED,
                {
                    "changes": [{"field": f, "old": old, "new": new} for f, old, new in changes if f != "status"],
                },
            )
        )
    return out


@dataclasses.dataclass(frozen=True, slots=True)
class Secret:
    """One signing secret (`whsec_<base64>`); expires_ms set once a newer one replaced it."""

    value: str
    expires_ms: int | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Webhook:
    """A receiver of events: where, which events, how it is signed, whether it is live."""

    id: str
    url: str
    events: tuple[str, ...] = ()
    enabled: bool = True
    description: str = ""
    # Newest first; older ones sign too until they expire (RotateSecret's grace period).
    secrets: tuple[Secret, ...] = ()
    token: str = ""  # sent as Webhook-Token when set (Evidential's style)
    sign_body: bool = False  # adds `signature`: hex HMAC-SHA256 of the JSON `data` (Eppo's style)
    format: str = DEFAULT_FORMAT  # the body's shape: see core.webhook_formats
    disabled_reason: str = ""
    failed_events: int = 0  # events given up on in a row; reset by any success
    create_time_ms: int = 0
    update_time_ms: int = 0

    def live_secrets(self, now_ms: int) -> list[str]:
        """The secrets that sign now: the newest and any still in their grace period."""
        return [s.value for s in self.secrets if s.expires_ms is None or s.expires_ms > now_ms]


def webhook_to_dict(webhook: Webhook) -> dict[str, Any]:
    """Stored form (JSON object). The default format is left out, so a webhook stored
    before formats existed reads back to the same JSON (the stores compare it on save)."""
    raw = dataclasses.asdict(webhook)
    raw["events"] = list(webhook.events)
    raw["secrets"] = [dataclasses.asdict(s) for s in webhook.secrets]
    if webhook.format == DEFAULT_FORMAT:
        del raw["format"]
    return raw


def webhook_from_dict(raw: Mapping[str, Any]) -> Webhook:
    """Inverse of webhook_to_dict."""
    fields = dict(raw)
    fields["events"] = tuple(fields.get("events", ()))
    fields["secrets"] = tuple(Secret(**s) for s in fields.get("secrets", ()))
    return Webhook(**fields)
