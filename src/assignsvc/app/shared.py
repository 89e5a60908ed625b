"""What the catalog use cases share: paged listing and its tokens, id checks, and the
read-change-write retry.

Why one module: experiments, saved groups and webhooks page, check ids and retry a
lost compare-and-set the same way, so a client sees one behaviour for all three.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Awaitable, Callable, Iterable
from typing import Protocol, TypeVar

from assignsvc.core.scoping import datasource_of, local_part, qualify
from assignsvc.errors import ConflictError, FieldViolation, InvalidArgumentError

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
# Read-change-write rounds before giving up: each lost round means another writer won.
CAS_ATTEMPTS = 5


class _Listed(Protocol):
    @property
    def id(self) -> str: ...


Listed = TypeVar("Listed", bound=_Listed)
T = TypeVar("T")


def encode_page_token(after_id: str) -> str:
    """Opaque to clients (AIP-158); here simply the last id returned."""
    raw = json.dumps({"after": after_id}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_page_token(token: str) -> str:
    """The id to continue after; InvalidArgumentError for anything we did not issue."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        after = json.loads(raw)["after"]
    except (binascii.Error, ValueError, KeyError, TypeError) as exc:
        raise InvalidArgumentError.single("page_token", "is not a token this API issued") from exc
    if not isinstance(after, str):
        raise InvalidArgumentError.single("page_token", "is not a token this API issued")
    return after


def page_size_of(size: int) -> int:
    """The page size a request asked for (0: the default), capped; negative is refused."""
    if size < 0:
        raise InvalidArgumentError.single("page_size", "must not be negative")
    return min(size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


def page_of(items: Iterable[Listed], size: int, token: str, datasource: str) -> tuple[list[Listed], str]:
    """A page of the datasource's items (given ordered by id) and the next page's token
    ('' at the end). Tokens hold the local id (callers never see internal ids)."""
    size = page_size_of(size)
    after = qualify(datasource, decode_page_token(token)) if token else ""
    remaining = [item for item in items if item.id > after and datasource_of(item.id) == datasource]
    page = remaining[:size]
    return page, encode_page_token(local_part(page[-1].id)) if len(remaining) > size else ""


def check_id(rule: Callable[[str, str], list[FieldViolation]], value: str, field: str) -> None:
    """InvalidArgumentError unless `value` passes the id rule (rule(value, field): its violations)."""
    violations = rule(value, field)
    if violations:
        raise InvalidArgumentError(violations)


async def read_change_write(attempt: Callable[[], Awaitable[T | None]], gave_up: str) -> T:
    """attempt() again while it answers None (someone wrote between its read and its
    write), CAS_ATTEMPTS times at most; then ConflictError(gave_up)."""
    for _ in range(CAS_ATTEMPTS):
        result = await attempt()
        if result is not None:
            return result
    raise ConflictError(gave_up)
