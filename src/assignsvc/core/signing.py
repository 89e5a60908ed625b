"""Webhook signatures: Standard Webhooks headers, and the optional body signature.

Standard Webhooks (https://www.standardwebhooks.com): the secret is `whsec_` + base64
of the key; `webhook-signature` is `v1,` + base64(HMAC-SHA256(key, "id.timestamp.body")),
one per live secret, space-separated, so a receiver holding either the old or the new
secret accepts a message during a rotation. The body signature (Eppo's style) is the
hex HMAC-SHA256 of the JSON `data` exactly as it appears in the body, with the newest key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Sequence

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32


def format_secret(key: bytes) -> str:
    """`whsec_<base64>` for a random key."""
    return SECRET_PREFIX + base64.b64encode(key).decode()


def secret_key(secret: str) -> bytes:
    """The HMAC key of a `whsec_` secret; ValueError for anything else."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError("a webhook secret starts with whsec_")
    try:
        key = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except binascii.Error:
        raise ValueError("a webhook secret is whsec_ followed by base64") from None
    if len(key) < 24 or len(key) > 64:
        raise ValueError("a webhook secret holds 24 to 64 bytes")
    return key


def sign(secret: str, message_id: str, timestamp_s: int, body: bytes) -> str:
    """One `v1,<base64>` signature."""
    to_sign = f"{message_id}.{timestamp_s}.".encode() + body
    digest = hmac.new(secret_key(secret), to_sign, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signature_header(secrets: Sequence[str], message_id: str, timestamp_s: int, body: bytes) -> str:
    """The `webhook-signature` value: one signature per live secret, space-separated."""
    return " ".join(sign(s, message_id, timestamp_s, body) for s in secrets)


def body_signature(secret: str, data_json: str) -> str:
    """Hex HMAC-SHA256 of the serialized `data` (what the body's `signature` field holds)."""
    return hmac.new(secret_key(secret), data_json.encode(), hashlib.sha256).hexdigest()


def standard_headers(secrets: Sequence[str], message_id: str, timestamp_s: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers."""
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp_s),
        "webhook-signature": signature_header(secrets, message_id, timestamp_s, body),
    }
