"""Export resume tokens: where an export stopped, signed so that a tampered, foreign
or expired token is refused instead of silently exporting the wrong rows.

A token names a position in the export's fixed order (bucket version, storage shard,
participant id within the shard, ids in byte order) and the export it belongs to
(a digest of the experiment id and the filters). It is HMAC-SHA256 signed with a key
every replica shares (kept in Redis), so any replica can resume any export.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass

TOKEN_VERSION = 1
MAX_AGE_MS = 7 * 24 * 3600 * 1000  # a week: long enough for any export, short enough to rotate


class TokenError(ValueError):
    """The token was not issued for this export, was altered, or is too old."""


@dataclass(frozen=True, slots=True)
class ExportPosition:
    """The last row delivered: resume after `participant` in `shard` of `bucket_version`."""

    bucket_version: int
    shard: int
    participant: str


def export_scope(experiment_id: str, filters: object) -> str:
    """What a token is valid for: the experiment and the exact filters (repr of a frozen dataclass)."""
    return hashlib.sha256(f"{experiment_id}\x00{filters!r}".encode()).hexdigest()[:32]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def issue(key: bytes, scope: str, position: ExportPosition, now_ms: int) -> str:
    """A token for `position`, valid for `scope` for MAX_AGE_MS."""
    payload = json.dumps(
        [TOKEN_VERSION, scope, position.bucket_version, position.shard, position.participant, now_ms],
        separators=(",", ":"),
        ensure_ascii=False,
    ).encode()
    mac = hmac.new(key, payload, hashlib.sha256).digest()
    return f"{_b64(payload)}.{_b64(mac)}"


def open_token(key: bytes, scope: str, token: str, now_ms: int) -> ExportPosition:
    """The position a token names; TokenError if it is not a valid token for `scope` now."""
    try:
        payload_text, mac_text = token.split(".")
        payload, mac = _unb64(payload_text), _unb64(mac_text)
    except (ValueError, binascii.Error) as exc:
        raise TokenError("is not a resume token this API issued") from exc
    if not hmac.compare_digest(mac, hmac.new(key, payload, hashlib.sha256).digest()):
        raise TokenError("is not a resume token this API issued (altered, or from another deployment)")
    version, token_scope, bucket_version, shard, participant, issued_ms = json.loads(payload)
    if version != TOKEN_VERSION or token_scope != scope:
        raise TokenError("belongs to another export (other experiment or filters)")
    if now_ms - issued_ms > MAX_AGE_MS:
        raise TokenError("has expired: resume tokens are valid for 7 days; start the export again")
    return ExportPosition(bucket_version, shard, participant)
