"""Hypothesis strategies for any request message, built from its protobuf descriptor.

Every field may be set or not, to a plausible value (ids of experiments the test made,
valid arms and conditions) or a hostile one (astral text, huge or negative numbers,
NaN, unknown enum values, out-of-range timestamps), so a fuzz run reaches both the
servicers' validation and the code behind it. Webhook URLs are drawn from IP literals
and garbage only: a random host name would send the SSRF guard to DNS.
"""

from __future__ import annotations

import json
import random
from typing import Any

from google.protobuf import descriptor, message_factory
from google.protobuf.message import Message
from hypothesis import strategies as st

FD = descriptor.FieldDescriptor
IDS = ["fz0", "fz1", "fz2", "fzpre", "grp0", "a0", "a1", "control", "", "x" * 65, "no-such"]
URLS = ["https://203.0.113.7/hook", "http://127.0.0.1:9/h", "https://[::1]/x", "ftp://1.2.3.4/", "not a url", ""]
CONDITIONS = [
    '{"country": "US"}',
    '{"age": {"$gt": 18}}',
    '{"$inGroup": "grp0"}',
    '{"$or": [{}]}',
    "{",
    "[]",
    '{"x": {"$regex": "("}}',
    '{"id": {"$in": [1, "a", null]}}',
]
EVENTS = ["experiment.created", "experiment.updated", "experiment.*", "*", "webhook.test", "bogus"]

hostile_text = st.text(max_size=24) | st.sampled_from(["\U0001f600" * 40, "a" * 300, "\x00", "é", " "])
json_scalar = st.none() | st.booleans() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8)
json_value = st.recursive(
    json_scalar,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)


def _string(field: descriptor.FieldDescriptor) -> st.SearchStrategy[str]:
    name = field.name
    if name == "url":
        return st.sampled_from(URLS)
    if name == "condition":
        return st.sampled_from(CONDITIONS) | hostile_text
    if name in ("events",):
        return st.sampled_from(EVENTS)
    return st.sampled_from(IDS) | hostile_text


_I32, _I64 = (-(2**31), 2**31 - 1), (-(2**63), 2**63 - 1)
_INTS = {
    FD.TYPE_INT32: _I32,
    FD.TYPE_SINT32: _I32,
    FD.TYPE_SFIXED32: _I32,
    FD.TYPE_UINT32: (0, 2**32 - 1),
    FD.TYPE_FIXED32: (0, 2**32 - 1),
    FD.TYPE_INT64: _I64,
    FD.TYPE_SINT64: _I64,
    FD.TYPE_SFIXED64: _I64,
    FD.TYPE_UINT64: (0, 2**64 - 1),
    FD.TYPE_FIXED64: (0, 2**64 - 1),
}


def _scalar(field: descriptor.FieldDescriptor) -> st.SearchStrategy[Any]:
    kind = field.type
    if kind == FD.TYPE_STRING:
        return _string(field)
    if kind == FD.TYPE_BYTES:
        return st.binary(max_size=40)
    if kind == FD.TYPE_BOOL:
        return st.booleans()
    if kind in (FD.TYPE_DOUBLE, FD.TYPE_FLOAT):
        plausible = st.sampled_from([0.0, 0.5, 1.0, 0.25])
        return plausible | st.floats(width=32 if kind == FD.TYPE_FLOAT else 64)
    if kind == FD.TYPE_ENUM:
        assert field.enum_type is not None
        return st.sampled_from([v.number for v in field.enum_type.values]) | st.integers(-3, 50)
    low, high = _INTS[kind]
    return st.integers(0, 3) | st.integers(low, high)


def _well_known(desc: descriptor.Descriptor) -> st.SearchStrategy[Message] | None:
    # A class built at run time: its fields' keyword arguments are unknown to the type checker.
    cls: Any = message_factory.GetMessageClass(desc)
    name = desc.full_name
    if name == "google.protobuf.Struct":
        return st.dictionaries(st.text(max_size=8), json_value, max_size=4).map(lambda d: _struct(cls, d))
    if name in ("google.protobuf.Timestamp", "google.protobuf.Duration"):
        seconds = st.integers(0, 2_000_000_000) | st.integers(-(2**63), 2**63 - 1)
        nanos = st.integers(0, 999_999_999) | st.integers(-(2**31), 2**31 - 1)
        return st.builds(lambda s, n: cls(seconds=s, nanos=n), seconds, nanos)
    if name == "google.protobuf.FieldMask":
        paths = st.sampled_from(["name", "arms", "coverage", "weights", "url", "events", "id", "bogus", ""])
        return st.lists(paths, max_size=3).map(lambda p: cls(paths=p))
    return None


def _struct(cls: type[Message], values: dict[str, Any]) -> Message:
    message = cls()
    message.update(values)  # type: ignore[attr-defined]
    return message


def messages(desc: descriptor.Descriptor, depth: int = 0) -> st.SearchStrategy[Message]:
    """Messages of type desc with any subset of fields set (nesting up to 3 levels)."""
    known = _well_known(desc)
    if known is not None:
        return known
    cls = message_factory.GetMessageClass(desc)
    optional: dict[str, st.SearchStrategy[Any]] = {}
    for field in desc.fields:
        if field.type == FD.TYPE_MESSAGE:
            if depth >= 3:
                continue
            message_type = field.message_type
            assert message_type is not None
            if message_type.GetOptions().map_entry:
                key, val = message_type.fields_by_name["key"], message_type.fields_by_name["value"]
                if val.type != FD.TYPE_MESSAGE:
                    optional[field.name] = st.dictionaries(_scalar(key), _scalar(val), max_size=3)
                continue
            inner = messages(message_type, depth + 1)
        else:
            inner = _scalar(field)
        optional[field.name] = st.lists(inner, max_size=4) if field.is_repeated else inner
    return st.fixed_dictionaries({}, optional=optional).map(lambda values: _build(cls, values))


def _build(cls: type[Message], values: dict[str, Any]) -> Message:
    message = cls()
    for name, value in values.items():
        field = getattr(message, name)
        if isinstance(value, dict):
            field.update(value)
        elif isinstance(value, list):
            if value and isinstance(value[0], Message):
                for item in value:
                    field.add().CopyFrom(item)
            else:
                field.extend(value)
        elif isinstance(value, Message):
            field.CopyFrom(value)
        else:
            setattr(message, name, value)
    return message


def bulk_items(seed: int, count: int) -> list[tuple[str, str, dict[str, Any] | None]]:
    """(experiment id, participant id, attributes) x count from a seeded generator:
    cheap enough for thousands per example, bounded to 2000 participants per experiment."""
    rng = random.Random(seed)
    items = []
    for _ in range(count):
        experiment = rng.choice(IDS)
        roll = rng.random()
        participant = f"p{rng.randrange(2000)}" if roll < 0.9 else rng.choice(["", "x" * 300, "\U0001f600", " a"])
        attributes = (
            None
            if rng.random() < 0.7
            else {"country": rng.choice(["US", "FR", 3, None]), "age": rng.choice([17, 30, "x", json.loads("1e308")])}
        )
        items.append((experiment, participant, attributes))
    return items
