"""Saved groups: named lists of ids that conditions test with $inGroup / $notInGroup.

A group may hold millions of ids and every replica keeps each group in memory (the
Assign path never asks Redis about membership), so a group is held as a sorted array
of 64-bit hashes of its ids: 8 bytes per id instead of about 100 for a set of str.
Two different ids share a 64-bit hash with probability about 2^-64 per pair, so a
non-member is taken for a member of a group of n ids with probability n / 2^64
(5e-14 for a million ids): documented, and accepted for targeting.
"""

from __future__ import annotations

import re
from array import array
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from xxhash import xxh3_64_intdigest

from assignsvc.core.scoping import local_part
from assignsvc.core.validation import ID_CHARSET_DOC, MAX_NAME_BYTES, participant_id_violations
from assignsvc.errors import FieldViolation

GROUP_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
# Ids one message may carry; bigger lists are streamed (UploadSavedGroupIds).
MAX_IDS_PER_MESSAGE = 10_000


@dataclass(frozen=True, slots=True)
class SavedGroup:
    """A saved group's description; its ids live beside it (a Redis set, a MemberSet in memory)."""

    id: str
    name: str
    size: int = 0
    revision: int = 0
    create_time_ms: int = 0
    update_time_ms: int = 0


class MemberSet:
    """Membership of string ids, 8 bytes per id (see the module docstring)."""

    __slots__ = ("_hashes",)

    def __init__(self, ids: Iterable[str | bytes] = ()) -> None:
        self._hashes = array("Q", sorted(set(member_hashes(ids))))

    @classmethod
    def from_hashes(cls, hashes: Iterable[int]) -> MemberSet:
        """A set from member_hashes() computed earlier (e.g. batch by batch as ids arrive)."""
        members = cls()
        members._hashes = array("Q", sorted(set(hashes)))
        return members

    def __contains__(self, value: object) -> bool:
        if not isinstance(value, str):
            return False
        digest = xxh3_64_intdigest(value.encode("utf-8", "surrogatepass"))
        hashes = self._hashes
        at = bisect_left(hashes, digest)
        return at < len(hashes) and hashes[at] == digest

    def __len__(self) -> int:
        return len(self._hashes)


def member_hashes(ids: Iterable[str | bytes]) -> list[int]:
    """The 64-bit hashes MemberSet keeps, one per id."""
    return [xxh3_64_intdigest(_utf8(i)) for i in ids]


def _utf8(member: str | bytes) -> bytes:
    return member if isinstance(member, bytes) else member.encode("utf-8", "surrogatepass")


def group_id_violations(group_id: str, field: str) -> list[FieldViolation]:
    """Violations of the saved group id format (of its local part: see core.scoping)."""
    local_id = local_part(group_id)
    if not local_id:
        return [FieldViolation(field, "is required")]
    if not GROUP_ID_PATTERN.fullmatch(local_id):
        return [FieldViolation(field, f"must be 1-100 {ID_CHARSET_DOC}")]
    return []


def group_violations(group: SavedGroup, prefix: str = "saved_group.") -> list[FieldViolation]:
    """Every rule a saved group's description must satisfy."""
    out = group_id_violations(group.id, f"{prefix}id")
    if len(group.name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        out.append(FieldViolation(f"{prefix}name", f"must be at most {MAX_NAME_BYTES} bytes"))
    return out


def ids_violations(ids: Sequence[str], field: str) -> list[FieldViolation]:
    """Each id follows the participant id rule; at most MAX_IDS_PER_MESSAGE per message."""
    if len(ids) > MAX_IDS_PER_MESSAGE:
        return [
            FieldViolation(
                field,
                f"must hold at most {MAX_IDS_PER_MESSAGE} ids per message "
                "(stream bigger lists with UploadSavedGroupIds)",
            )
        ]
    out: list[FieldViolation] = []
    for i, member in enumerate(ids):
        out += participant_id_violations(member, f"{field}[{i}]")
        if len(out) >= 10:  # enough to fix a file in one pass without a megabyte of details
            break
    return out
