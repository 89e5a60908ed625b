"""The webhook admin use cases: create, read, update, delete, rotate, test, the log.

Every URL is checked twice: here (syntax, then the SSRF guard on what the host
resolves to now) and again by the dispatcher at each send, since DNS can change.
"""

from __future__ import annotations

import builtins
import dataclasses
import re
import secrets
from collections.abc import Callable, Sequence

from assignsvc.app.shared import (
    check_id,
    decode_page_token,
    encode_page_token,
    page_of,
    page_size_of,
    read_change_write,
)
from assignsvc.app.webhooks.http import SendError, resolve_checked
from assignsvc.core.clock import Clock, wall_clock_ms
from assignsvc.core.egress import Network, target, url_violations
from assignsvc.core.events import (
    MAX_DESCRIPTION_LENGTH,
    MAX_TOKEN_LENGTH,
    Secret,
    Webhook,
    canonical_json,
    event_filter_violations,
)
from assignsvc.core.scoping import local_part, qualify
from assignsvc.core.signing import SECRET_BYTES, format_secret
from assignsvc.core.webhook_formats import carried, filter_violations, format_violations
from assignsvc.errors import FieldViolation, InvalidArgumentError, NotFoundError
from assignsvc.store.outbox import DeliveryRecord
from assignsvc.store.protocols import Outbox, WebhookStore

DEFAULT_GRACE_S = 86_400.0
MAX_GRACE_S = 7 * 86_400.0
UPDATABLE = ("url", "events", "enabled", "description", "token", "sign_body", "format")
_ID = re.compile(r"^wh_[0-9a-f]{16}$")
_TOKEN = re.compile(r"^[\x21-\x7e]*$")  # visible ASCII: a header value that cannot split headers


def webhook_id_violations(webhook_id: str, field: str) -> list[FieldViolation]:
    """What is wrong with a webhook id (wh_ and 16 hex digits after the datasource), if anything."""
    if _ID.match(local_part(webhook_id)):
        return []
    return [FieldViolation(field, "must be a webhook id: wh_ and 16 hex digits")]


class WebhookManager:
    """Webhook definitions and their delivery log."""

    def __init__(
        self,
        store: WebhookStore,
        outbox: Outbox,
        allowed: Sequence[Network] = (),
        clock: Clock = wall_clock_ms,
        random_bytes: Callable[[int], bytes] = secrets.token_bytes,
    ) -> None:
        self._store = store
        self._outbox = outbox
        self._allowed = tuple(allowed)
        self._clock = clock
        self._random_bytes = random_bytes

    async def create(self, webhook: Webhook, datasource: str) -> Webhook:
        """Validate, give it an id (in the datasource) and a secret, store it enabled."""
        await self._check(webhook, UPDATABLE)
        now = self._clock()
        stored = dataclasses.replace(
            webhook,
            id=qualify(datasource, "wh_" + self._random_bytes(8).hex()),
            enabled=True,
            secrets=(Secret(format_secret(self._random_bytes(SECRET_BYTES))),),
            disabled_reason="",
            failed_events=0,
            create_time_ms=now,
            update_time_ms=now,
        )
        if not await self._store.create(stored):  # 64 random bits: a clash means a broken RNG
            raise RuntimeError("webhook id clash")
        return stored

    async def get(self, webhook_id: str) -> Webhook:
        """One webhook; NotFoundError if unknown."""
        check_id(webhook_id_violations, webhook_id, "webhook_id")
        webhook = await self._store.get(webhook_id)
        if webhook is None:
            raise NotFoundError("webhook", webhook_id)
        return webhook

    async def list(self, page_size: int, page_token: str, datasource: str) -> tuple[builtins.list[Webhook], str]:
        """A page of the datasource's webhooks by id and the next page's token ('' at the end)."""
        return page_of(await self._store.all(), page_size, page_token, datasource)

    async def update(self, patch: Webhook, paths: Sequence[str]) -> Webhook:
        """Change the masked fields; enabling clears the automatic disable."""
        check_id(webhook_id_violations, patch.id, "webhook.id")
        unknown = [p for p in paths if p not in UPDATABLE]
        if unknown or not paths:
            what = f"unknown field(s) {', '.join(unknown)}" if unknown else "is empty"
            raise InvalidArgumentError.single("update_mask", f"{what}; may name: {', '.join(UPDATABLE)}")
        await self._check(patch, paths)
        changes = {p: getattr(patch, p) for p in paths}
        if "enabled" in paths:
            changes["disabled_reason"] = ""

        async def attempt() -> Webhook | None:
            current = await self.get(patch.id)
            updated = dataclasses.replace(current, **changes, update_time_ms=self._clock())
            if ("format" in paths) != ("events" in paths):  # both in paths: checked with the rest
                _check_carried(updated, paths)
            saved = await self._store.save(updated, set_enabled="enabled" in paths, read=current)
            if saved is False:
                raise NotFoundError("webhook", patch.id)
            return await self.get(patch.id) if saved else None

        return await read_change_write(attempt, f"webhook {patch.id!r} kept changing under this update; retry")

    async def delete(self, webhook_id: str) -> None:
        """Remove the webhook, its log and its pending deliveries."""
        check_id(webhook_id_violations, webhook_id, "webhook_id")
        if not await self._store.delete(webhook_id):
            raise NotFoundError("webhook", webhook_id)

    async def rotate_secret(self, webhook_id: str, grace_s: float | None) -> Webhook:
        """A new secret first; the previous one signs until now + grace (older ones stop)."""
        grace = DEFAULT_GRACE_S if grace_s is None else grace_s
        if not 0 <= grace <= MAX_GRACE_S:
            raise InvalidArgumentError.single("grace_period", f"must be between 0 and {MAX_GRACE_S:g} seconds")
        fresh = Secret(format_secret(self._random_bytes(SECRET_BYTES)))

        async def attempt() -> Webhook | None:
            current = await self.get(webhook_id)
            now = self._clock()
            previous = [Secret(current.secrets[0].value, now + int(grace * 1000))] if current.secrets and grace else []
            updated = dataclasses.replace(current, secrets=(fresh, *previous), update_time_ms=now)
            saved = await self._store.save(updated, set_enabled=False, read=current)
            if saved is False:
                raise NotFoundError("webhook", webhook_id)
            return updated if saved else None

        return await read_change_write(attempt, f"webhook {webhook_id!r} kept changing under this rotation; retry")

    async def send_test(self, webhook_id: str) -> str:
        """Queue a webhook.test event for this webhook; the event id."""
        webhook = await self.get(webhook_id)
        entry = await self._outbox.add_test_event(webhook.id, canonical_json({"webhook_id": local_part(webhook.id)}))
        ms, _, seq = entry.partition("-")
        return f"evt_{int(ms):013d}{int(seq or 0):05d}"

    async def deliveries(
        self, webhook_id: str, page_size: int, page_token: str
    ) -> tuple[builtins.list[DeliveryRecord], str]:
        """A page of the webhook's deliveries, newest first."""
        size = page_size_of(page_size)
        after = decode_page_token(page_token) if page_token else ""
        await self.get(webhook_id)
        rows = await self._outbox.deliveries(webhook_id, size + 1, after)
        page = rows[:size]
        return page, encode_page_token(page[-1].id) if len(rows) > size else ""

    async def _check(self, webhook: Webhook, paths: Sequence[str]) -> None:
        """Every rule of the fields in paths, all violations at once; the URL's address last."""
        violations: list[FieldViolation] = []
        if "url" in paths:
            violations += url_violations(webhook.url)
        if "events" in paths:
            violations += event_filter_violations(list(webhook.events))
        if "format" in paths:
            violations += format_violations(webhook.format)
        if "format" in paths and "events" in paths and not format_violations(webhook.format):
            violations += filter_violations(webhook.format, webhook.events)
        if "description" in paths and len(webhook.description) > MAX_DESCRIPTION_LENGTH:
            violations.append(
                FieldViolation("webhook.description", f"must be at most {MAX_DESCRIPTION_LENGTH} characters")
            )
        if "token" in paths and (len(webhook.token) > MAX_TOKEN_LENGTH or not _TOKEN.match(webhook.token)):
            violations.append(
                FieldViolation(
                    "webhook.token", f"must be at most {MAX_TOKEN_LENGTH} visible ASCII characters (no spaces)"
                )
            )
        if not violations and "url" in paths:
            _, host, port = target(webhook.url)
            try:
                await resolve_checked(host, port, self._allowed)
            except SendError as exc:
                violations.append(FieldViolation("webhook.url", str(exc)))
        if violations:
            raise InvalidArgumentError(violations)


def _check_carried(webhook: Webhook, paths: Sequence[str]) -> None:
    """After an update of the format or the filter alone: the filter names only events the
    format carries. A new format is the violation when the stored filter does not fit it."""
    violations = filter_violations(webhook.format, webhook.events)
    if violations and "events" not in paths:
        cannot = [e for e in webhook.events if e not in carried(webhook.format)]
        violations = [
            FieldViolation(
                "webhook.format",
                f"the {webhook.format} format has no event for {', '.join(cannot)} in the webhook's filter;"
                f" it carries: {', '.join(carried(webhook.format))} (change `events` in the same update)",
            )
        ]
    if violations:
        raise InvalidArgumentError(violations)
