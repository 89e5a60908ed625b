"""Authentication and datasource administration: the key ring every call is checked against.

`KeyRing` holds every live key by digest, in memory, so checking a call costs a SHA-256
and a dict lookup and never a Redis call; it reloads from Redis whenever an `access:`
notice or a full registry reload says keys changed (so a revocation reaches every
replica within the propagation of an experiment change). Rate limits are token buckets
per key and per replica. `AccessManager` is the DatasourceService / ApiKeyService use
cases.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from assignsvc.core.access import (
    HINT_LENGTH,
    MAX_NAME_BYTES,
    ApiKey,
    Datasource,
    RateLimit,
    Scope,
    TokenBucket,
    grants,
    key_digest,
    new_key,
    rate_limit_violations,
    scope_violations,
    well_formed,
)
from assignsvc.core.clock import Clock, wall_clock_ms
from assignsvc.core.scoping import DATASOURCE_ID_DOC, datasource_id_valid
from assignsvc.errors import (
    AlreadyExistsError,
    FieldViolation,
    InvalidArgumentError,
    NotFoundError,
    RateLimitedError,
    StoreUnavailableError,
    UnauthenticatedError,
)
from assignsvc.store.protocols import AccessStore

log = logging.getLogger(__name__)

USE_FLUSH_INTERVAL_S = 60.0  # last-used times are written at most this often per replica


class Refusal(enum.Enum):
    """Why a call was refused before any servicer ran (service.status maps these)."""

    MALFORMED = "MALFORMED"  # not a key at all: wrong prefix, length, alphabet or checksum
    UNAUTHENTICATED = "UNAUTHENTICATED"  # an unknown, revoked or mismatched key
    PERMISSION_DENIED = "PERMISSION_DENIED"  # a valid key without the scope
    RATE_LIMITED = "RATE_LIMITED"  # the key's rate limit; the float is the retry delay


class KeyRing:
    """Live keys by digest (memory only on the call path), rate buckets, last-used times."""

    def __init__(
        self,
        store: AccessStore,
        operator_digest: str = "",
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Clock = wall_clock_ms,
    ) -> None:
        self._store = store
        # digest -> (digest, key, every scope the key grants): what a call's check reads.
        self._by_digest: dict[bytes, tuple[bytes, ApiKey, frozenset[Scope], CallerGrant]] = {}
        self._datasources: frozenset[str] = frozenset()
        self._live_ids: frozenset[str] = frozenset()
        self._configured: ApiKey | None = None
        if operator_digest:  # configured at start (ASSIGNSVC_OPERATOR_KEY): never stored
            self._configured = ApiKey("operator", "", operator_digest, frozenset({Scope.OPERATOR}), "configured")
        self._buckets: dict[str, TokenBucket] = {}
        self._used: dict[str, int] = {}
        self._clock = clock
        self._wall_clock = wall_clock
        self._flusher: asyncio.Task[None] | None = None

    async def reload(self) -> None:
        """Re-read every key and datasource (a few thousand at most: one HGETALL each)."""
        self.replace(await self._store.keys(), await self._store.datasources())

    def replace(self, keys: list[ApiKey], datasources: list[Datasource]) -> None:
        """Hold exactly these keys (the live ones) and datasources."""
        live = [k for k in keys if not k.revoked]
        if self._configured is not None:
            live.append(self._configured)
        self._by_digest = {
            bytes.fromhex(k.digest): (
                bytes.fromhex(k.digest),
                k,
                frozenset(s for s in Scope if grants(k.scopes, s)),
                CallerGrant(self, k),
            )
            for k in live
        }
        self._datasources = frozenset(d.id for d in datasources)
        self._live_ids = frozenset(k.id for k in live)
        self._buckets = {k: b for k, b in self._buckets.items() if k in self._live_ids}

    def check(  # noqa: PLR0911 - one return per refusal
        self, datasource: str, api_key: str, needed: Scope, operator_may: bool = False
    ) -> CallerGrant | tuple[Refusal, float]:
        """The key's grant, if it may make this call now; else why not (and a rate-limited
        call's retry delay). Costs a SHA-256 and a dict lookup when admitted.

        `datasource` is the `datasource-id` metadata: a datasource key must name its own.
        An operator key needs none for OPERATOR calls, and may make the calls marked
        `operator_may` (key management) in any existing datasource it names, or, naming
        none, on the operator keys themselves.
        """
        digest = hashlib.sha256(api_key.encode("ascii", "replace")).digest()
        held = self._by_digest.get(digest)
        if held is None or not hmac.compare_digest(held[0], digest):
            # Unknown: a well-formed key was revoked or never existed; a malformed one is a
            # typo or a guess (the checksum tells them apart without any lookup).
            return (Refusal.UNAUTHENTICATED if well_formed(api_key) else Refusal.MALFORMED), 0.0
        _, key, granted, grant = held
        if key.datasource:
            if datasource != key.datasource:
                return Refusal.UNAUTHENTICATED, 0.0
            if needed not in granted:
                return Refusal.PERMISSION_DENIED, 0.0
        elif needed is not Scope.OPERATOR:
            if not operator_may:
                return Refusal.PERMISSION_DENIED, 0.0
            if datasource and datasource not in self._datasources:
                return Refusal.UNAUTHENTICATED, 0.0  # an operator acting in a datasource names a real one
        if key.rate_limit.limited:
            wait = self._bucket(key).take(self._clock())
            if wait:
                return Refusal.RATE_LIMITED, wait
        self._used[key.id] = 1
        return grant  # one per key, made at reload: what the call may check again while it runs

    def datasource_of(self, api_key: str) -> str:
        """The datasource of a live datasource key ("" for an unknown key or an operator key):
        for HTTP routes where the key alone names the caller (a key belongs to one datasource)."""
        held = self._by_digest.get(hashlib.sha256(api_key.encode("ascii", "replace")).digest())
        return "" if held is None else held[1].datasource

    def is_live(self, key: ApiKey) -> bool:
        """Whether the key still authenticates (False once a revocation reached this replica)."""
        return key.id in self._live_ids

    def take(self, key: ApiKey) -> float:
        """One more call of a running stream: 0.0, or the retry delay if over the limit."""
        if not key.rate_limit.limited:
            return 0.0
        return self._bucket(key).take(self._clock())

    def bill(self, key: ApiKey, calls: int) -> None:
        """Charge a running call's extra items (BatchAssign) to its key."""
        if key.rate_limit.limited and calls > 0:
            self._bucket(key).bill(self._clock(), calls)

    def _bucket(self, key: ApiKey) -> TokenBucket:
        bucket = self._buckets.get(key.id)
        if bucket is None:
            bucket = self._buckets[key.id] = TokenBucket(key.rate_limit, self._clock())
        return bucket

    def start(self) -> None:
        """Write last-used times in the background."""
        self._flusher = asyncio.create_task(self._flush_forever(), name="api-key-use")

    async def stop(self) -> None:
        """Stop the background writer, writing what it holds first."""
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
            self._flusher = None
        with contextlib.suppress(StoreUnavailableError):
            await self.flush_use()

    async def flush_use(self) -> None:
        """Record, as now, the keys used since the last flush."""
        used, self._used = self._used, {}
        now = self._wall_clock()
        stored = {k: now for k in used if k != "operator"}
        try:
            await self._store.record_use(stored)
        except StoreUnavailableError:
            self._used.update(used)  # try again next time
            raise

    async def _flush_forever(self) -> None:
        while True:
            await asyncio.sleep(USE_FLUSH_INTERVAL_S)
            try:
                await self.flush_use()
            except StoreUnavailableError as exc:
                log.warning("could not record API key use: %s", exc)


@dataclass(frozen=True, slots=True)
class CallerGrant:
    """A running call's key: streams and batches check it again as they go, so a revocation
    or the rate limit reaches calls already open, not only new ones."""

    ring: KeyRing
    key: ApiKey

    def ensure_live(self) -> None:
        """UnauthenticatedError once the key was revoked (as seen by this replica)."""
        if not self.ring.is_live(self.key):
            raise UnauthenticatedError("the API key of this call was revoked")

    def take(self) -> None:
        """One more item of a stream; RateLimitedError over the key's limit."""
        self.ensure_live()
        wait = self.ring.take(self.key)
        if wait:
            raise RateLimitedError(wait)

    def bill(self, items: int) -> None:
        """A batch's items beyond the one its call was admitted for."""
        self.ensure_live()
        self.ring.bill(self.key, items)


@dataclass(frozen=True, slots=True)
class CreatedKey:
    """A new key: its record, and the key itself (shown once, never stored)."""

    record: ApiKey
    secret: str


class AccessManager:
    """DatasourceService and ApiKeyService: datasources, and keys within one."""

    def __init__(
        self,
        store: AccessStore,
        ring: KeyRing | None = None,
        clock: Clock = wall_clock_ms,
        random_hex: Callable[[int], str] = secrets.token_hex,
    ) -> None:
        self._store = store
        self._ring = ring
        self._clock = clock
        self._random_hex = random_hex

    async def _changed(self) -> None:
        """This replica sees its own write at once (others within the propagation delay)."""
        if self._ring is not None:
            await self._ring.reload()

    async def create_datasource(self, datasource: Datasource) -> Datasource:
        """A new, empty datasource; its id is permanent (every key of its objects holds it)."""
        violations = []
        if not datasource_id_valid(datasource.id):
            violations.append(FieldViolation("datasource.id", f"must be {DATASOURCE_ID_DOC}"))
        if len(datasource.name.encode()) > MAX_NAME_BYTES:
            violations.append(FieldViolation("datasource.name", f"must be at most {MAX_NAME_BYTES} bytes"))
        if violations:
            raise InvalidArgumentError(violations)
        stored = replace(datasource, name=datasource.name or datasource.id, create_time_ms=self._clock())
        if not await self._store.create_datasource(stored):
            raise AlreadyExistsError("datasource", datasource.id)
        await self._changed()
        return stored

    async def datasources(self) -> list[Datasource]:
        """Every datasource, by id."""
        return await self._store.datasources()

    async def create_key(
        self, datasource: str, name: str, scopes: frozenset[Scope], rate_limit: RateLimit
    ) -> CreatedKey:
        """A new key of the datasource; the returned secret is the only copy there will be."""
        if not datasource:
            raise InvalidArgumentError.single(
                "datasource-id", "names the datasource of the new key (operator keys come from `assignsvc bootstrap`)"
            )
        violations = scope_violations(scopes, "api_key.scopes") + rate_limit_violations(rate_limit, "api_key")
        if len(name.encode()) > MAX_NAME_BYTES:
            violations.append(FieldViolation("api_key.name", f"must be at most {MAX_NAME_BYTES} bytes"))
        if violations:
            raise InvalidArgumentError(violations)
        await self._require_datasource(datasource)
        return await self._store_new_key(datasource, name, scopes, rate_limit)

    async def create_operator_key(self, name: str = "bootstrap") -> CreatedKey:
        """An operator key (what `assignsvc bootstrap` makes, straight against Redis)."""
        return await self._store_new_key("", name, frozenset({Scope.OPERATOR}), RateLimit())

    async def _store_new_key(
        self, datasource: str, name: str, scopes: frozenset[Scope], rate_limit: RateLimit
    ) -> CreatedKey:
        secret = new_key()
        record = ApiKey(
            id="key_" + self._random_hex(8),
            datasource=datasource,
            digest=key_digest(secret),
            scopes=scopes,
            name=name,
            hint=secret[:HINT_LENGTH],
            rate_limit=rate_limit,
            create_time_ms=self._clock(),
        )
        if not await self._store.create_key(record):  # 64 random bits: a clash means a broken RNG
            raise RuntimeError("API key id clash")
        await self._changed()
        return CreatedKey(record, secret)

    async def keys(self, datasource: str) -> list[tuple[ApiKey, int]]:
        """The datasource's keys (revoked ones too) with when each was last used (0: never);
        datasource "": the operator keys `assignsvc bootstrap` stored."""
        if datasource:
            await self._require_datasource(datasource)
        used = await self._store.last_used()
        return [(k, used.get(k.id, 0)) for k in await self._store.keys() if k.datasource == datasource]

    async def revoke_key(self, datasource: str, key_id: str) -> ApiKey:
        """Revoke a key of the datasource ("" : an operator key) on every replica; revoking twice
        changes nothing. (ASSIGNSVC_OPERATOR_KEY is not stored: restart without it instead.)"""
        for key in await self._store.keys():
            if key.id == key_id and key.datasource == datasource:
                if key.revoked:
                    return key
                revoked = replace(key, revoke_time_ms=self._clock())
                if not await self._store.save_key(revoked):
                    break
                await self._changed()
                return revoked
        raise NotFoundError("api_key", key_id)

    async def _require_datasource(self, datasource: str) -> None:
        if not any(d.id == datasource for d in await self._store.datasources()):
            raise NotFoundError("datasource", datasource)
