"""API keys and datasources: the key format, scopes, stored records and the rate limit.

A key is `asv_` + 32 random base62 characters + a 6-character base62 CRC32 of those 32
(GitHub's token format): a scanner recognizes the prefix, and a mistyped or made-up key
fails the checksum before anything is looked up. Only the SHA-256 digest of a key is
stored; the key itself is shown once, when it is created.
"""

from __future__ import annotations

import enum
import hashlib
import secrets
import string
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from assignsvc.errors import FieldViolation

KEY_PREFIX = "asv_"
BODY_LENGTH = 32  # 62^32 ≈ 2^190 keys
CHECKSUM_LENGTH = 6  # 62^6 > 2^32: any CRC32 fits
KEY_LENGTH = len(KEY_PREFIX) + BODY_LENGTH + CHECKSUM_LENGTH
BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
_BASE62_SET = frozenset(BASE62)
HINT_LENGTH = len(KEY_PREFIX) + 4  # shown in listings so people can tell keys apart
MAX_NAME_BYTES = 256
MIN_RATE_PER_S = 0.001  # one call per ~17 minutes; lower is a typo, and would overflow retry delays
MAX_RATE_PER_S = 1_000_000.0
MAX_RETRY_DELAY_S = 3600.0
MAX_BURST = 1_000_000


class Scope(enum.Enum):
    """What a key may do. ADMIN includes READ and ASSIGN within its datasource; OPERATOR
    manages datasources and any datasource's keys, and nothing else."""

    ASSIGN = "assign"
    READ = "read"
    ADMIN = "admin"
    OPERATOR = "operator"


DATASOURCE_SCOPES = (Scope.ASSIGN, Scope.READ, Scope.ADMIN)


def grants(held: frozenset[Scope], needed: Scope) -> bool:
    """Whether keys with scopes `held` may make a call that needs `needed`."""
    return needed in held or (Scope.ADMIN in held and needed in (Scope.READ, Scope.ASSIGN))


def _base62(value: int, width: int) -> str:
    digits = []
    for _ in range(width):
        value, rest = divmod(value, 62)
        digits.append(BASE62[rest])
    return "".join(reversed(digits))


def _checksum(body: str) -> str:
    return _base62(zlib.crc32(body.encode("ascii")), CHECKSUM_LENGTH)


def new_key(choice: Callable[[str], str] = secrets.choice) -> str:
    """A fresh random key (secrets.choice: uniform over base62, from the OS CSPRNG)."""
    body = "".join(choice(BASE62) for _ in range(BODY_LENGTH))
    return KEY_PREFIX + body + _checksum(body)


def well_formed(key: str) -> bool:
    """Prefix, length, alphabet and checksum hold: no store lookup needed to refuse a typo."""
    if len(key) != KEY_LENGTH or not key.startswith(KEY_PREFIX):
        return False
    body = key[len(KEY_PREFIX) : len(KEY_PREFIX) + BODY_LENGTH]
    tail = key[len(KEY_PREFIX) + BODY_LENGTH :]
    return _BASE62_SET.issuperset(body) and _checksum(body) == tail


def key_digest(key: str) -> str:
    """What is stored and compared: the hex SHA-256 of the key (keys are random, so no salt
    or slow hash is needed: nobody can guess 190 bits)."""
    return hashlib.sha256(key.encode("ascii", "replace")).hexdigest()


@dataclass(frozen=True, slots=True)
class Datasource:
    """A tenant: owns its experiments, saved groups, webhooks, assignments and keys."""

    id: str
    name: str = ""
    create_time_ms: int = 0


@dataclass(frozen=True, slots=True)
class RateLimit:
    """Requests per second and burst for one key (per replica); 0 = unlimited."""

    per_second: float = 0.0
    burst: int = 0

    @property
    def limited(self) -> bool:
        """Whether calls are limited at all."""
        return self.per_second > 0


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A stored key: its digest, never the key."""

    id: str
    datasource: str  # "" for operator keys
    digest: str
    scopes: frozenset[Scope]
    name: str = ""
    hint: str = ""  # the key's first characters
    rate_limit: RateLimit = RateLimit()
    create_time_ms: int = 0
    revoke_time_ms: int = 0  # 0 = live

    @property
    def revoked(self) -> bool:
        """A revoked key authenticates nothing."""
        return self.revoke_time_ms != 0


def scope_violations(scopes: Iterable[Scope], field: str) -> list[FieldViolation]:
    """A datasource key names at least one of assign, read, admin (operator keys are made by
    `assignsvc bootstrap` or configured at start, never through the API)."""
    held = list(scopes)
    if not held:
        return [FieldViolation(field, "must name at least one scope: assign, read or admin")]
    if any(s not in DATASOURCE_SCOPES for s in held):
        return [FieldViolation(field, "may name only assign, read and admin")]
    return []


def rate_limit_violations(limit: RateLimit, field: str) -> list[FieldViolation]:
    """Both zero (unlimited), or a positive rate with a burst of at least 1."""
    out: list[FieldViolation] = []
    rate = limit.per_second
    if rate != 0 and not MIN_RATE_PER_S <= rate <= MAX_RATE_PER_S:  # NaN fails both comparisons
        out.append(
            FieldViolation(
                f"{field}.requests_per_second", f"must be 0 (unlimited) or in [{MIN_RATE_PER_S:g}, {MAX_RATE_PER_S:g}]"
            )
        )
    if not 0 <= limit.burst <= MAX_BURST:
        out.append(FieldViolation(f"{field}.burst", f"must be in [0, {MAX_BURST}]"))
    elif limit.per_second > 0 and limit.burst < 1:
        out.append(FieldViolation(f"{field}.burst", "must be at least 1 when requests_per_second is set"))
    elif limit.per_second == 0 and limit.burst:
        out.append(FieldViolation(f"{field}.burst", "needs requests_per_second"))
    return out


class TokenBucket:
    """The classic token bucket: `burst` calls at once, refilled at `per_second`."""

    __slots__ = ("_burst", "_rate", "_tokens", "_updated")

    def __init__(self, limit: RateLimit, now: float) -> None:
        self._rate = limit.per_second
        self._burst = float(limit.burst)
        self._tokens = float(limit.burst)
        self._updated = now

    def _refill(self, now: float) -> float:
        tokens = min(self._burst, self._tokens + (now - self._updated) * self._rate)
        self._updated = now
        return tokens

    def take(self, now: float) -> float:
        """0.0 if a call may go now (one token taken), else seconds until one may (capped)."""
        tokens = self._refill(now)
        if tokens >= 1.0:
            self._tokens = tokens - 1.0
            return 0.0
        self._tokens = tokens
        return min(MAX_RETRY_DELAY_S, (1.0 - tokens) / self._rate)

    def bill(self, now: float, calls: int) -> None:
        """Charge `calls` more to a call already admitted (a batch's other items): the bucket
        may go below zero, and later calls wait until it has refilled."""
        self._tokens = self._refill(now) - calls
