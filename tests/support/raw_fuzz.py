"""Raw request bodies for fuzzing the server below the protobuf layer, from a seeded Random.

A body is random bytes, a plausible message of the method's request type (built from its
descriptor), or one mutated: bits flipped, cut short, a field's wire type changed, strings
made invalid UTF-8, Structs nested 1-500 levels. The server must answer each one with a
precise status (never UNKNOWN or INTERNAL) and log no traceback: `Records` collects what
its loggers wrote.
"""

from __future__ import annotations

import contextlib
import logging
import random
from collections.abc import Callable
from typing import Any

from google.protobuf import descriptor, message_factory, struct_pb2
from google.protobuf.message import Message

FD = descriptor.FieldDescriptor
MARK = "@@"  # a string swapped for invalid UTF-8 on the wire
STRINGS = ["fz0", "fz1", "fzpre", "grp0", "a0", "a1", "p1", "", "x" * 70, "é", MARK, "https://203.0.113.7/h"]
BAD_UTF8 = [b"\xc3\x28", b"\xff\xfe", b"\xed\xa0", b"\xc0\xaf", b"\xf8\x88", b"\xe2\x82"]  # 2 bytes, as MARK
_INT_RANGES = {
    FD.TYPE_INT32: (-(2**31), 2**31 - 1),
    FD.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FD.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FD.TYPE_UINT32: (0, 2**32 - 1),
    FD.TYPE_FIXED32: (0, 2**32 - 1),
    FD.TYPE_INT64: (-(2**63), 2**63 - 1),
    FD.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FD.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FD.TYPE_UINT64: (0, 2**64 - 1),
    FD.TYPE_FIXED64: (0, 2**64 - 1),
}


def nested_struct(depth: int) -> struct_pb2.Struct:
    """A Struct with `depth` levels of Structs below its own."""
    inner = struct_pb2.Struct()
    inner.fields["leaf"].string_value = "x"
    for _ in range(depth):
        outer = struct_pb2.Struct()
        outer.fields["a"].struct_value.CopyFrom(inner)
        inner = outer
    return inner


def _scalar(field: descriptor.FieldDescriptor, rng: random.Random) -> Any:
    kind = field.type
    if kind == FD.TYPE_STRING:
        return rng.choice(STRINGS)
    if kind == FD.TYPE_BYTES:
        return rng.randbytes(rng.randrange(8))
    if kind == FD.TYPE_BOOL:
        return rng.random() < 0.5
    if kind in (FD.TYPE_DOUBLE, FD.TYPE_FLOAT):
        return rng.choice([0.0, 0.5, 1.0, -1.0, 1e30])
    if kind == FD.TYPE_ENUM:
        return rng.randrange(-1, 5)
    low, high = _INT_RANGES[kind]
    return rng.choice([0, 1, 10, 1000, low, high])


def sample(message: descriptor.Descriptor, rng: random.Random, struct_depth: int = 1, depth: int = 0) -> Message:
    """A message of that type with some fields set to plausible or hostile values."""
    built = message_factory.GetMessageClass(message)()
    for field in message.fields:
        if rng.random() >= 0.3:
            _fill(built, field, rng, struct_depth, depth)
    return built


def _fill(built: Any, field: descriptor.FieldDescriptor, rng: random.Random, struct_depth: int, depth: int) -> None:
    target = field.message_type
    if target is None:
        if field.is_repeated:
            getattr(built, field.name).extend(_scalar(field, rng) for _ in range(rng.randrange(4)))
        else:
            with contextlib.suppress(ValueError):  # a closed enum refuses an unknown value
                setattr(built, field.name, _scalar(field, rng))
    elif target.full_name == "google.protobuf.Struct":
        getattr(built, field.name).CopyFrom(nested_struct(struct_depth))
    elif target.GetOptions().map_entry:
        entries = getattr(built, field.name)
        for _ in range(rng.randrange(3)):
            entries[rng.choice(STRINGS)] = rng.choice(STRINGS)
    elif target.full_name.startswith("google.protobuf.") or depth >= 3:
        return  # Timestamp, Duration, FieldMask...: left unset
    elif field.is_repeated:
        for _ in range(rng.randrange(3)):
            getattr(built, field.name).add().CopyFrom(sample(target, rng, struct_depth, depth + 1))
    else:
        getattr(built, field.name).CopyFrom(sample(target, rng, struct_depth, depth + 1))


def _varint(raw: bytes, position: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = raw[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, position
        shift += 7


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def retag(raw: bytes, rng: random.Random) -> bytes:
    """raw with one top-level field's wire type changed (its payload left as it was)."""
    tags: list[tuple[int, int, int]] = []
    position = 0
    try:
        while position < len(raw) and len(tags) < 64:
            start = position
            tag, position = _varint(raw, position)
            tags.append((start, position, tag))
            wire = tag & 7
            if wire == 0:
                _, position = _varint(raw, position)
            elif wire == 1:
                position += 8
            elif wire == 5:
                position += 4
            elif wire == 2:
                length, position = _varint(raw, position)
                position += length
            else:
                break
    except IndexError:
        pass
    if not tags:
        return bytes([rng.randrange(256)]) + raw
    start, end, tag = rng.choice(tags)
    wire = rng.choice([w for w in range(8) if w != tag & 7])
    return raw[:start] + _encode_varint((tag >> 3) << 3 | wire) + raw[end:]


def flip_bits(raw: bytes, rng: random.Random) -> bytes:
    if not raw:
        return bytes([rng.randrange(256)])
    out = bytearray(raw)
    for _ in range(rng.randint(1, 8)):
        out[rng.randrange(len(out))] ^= 1 << rng.randrange(8)
    return bytes(out)


def bad_utf8(raw: bytes, rng: random.Random) -> bytes:
    """raw with its MARK strings made invalid UTF-8 (or such a string appended as field 1)."""
    marked = raw.replace(MARK.encode(), rng.choice(BAD_UTF8))
    return marked if marked != raw else raw + b"\x0a\x02\xc3\x28"


def truncate(raw: bytes, rng: random.Random) -> bytes:
    return raw[: rng.randrange(len(raw) + 1)]


MUTATIONS: list[tuple[float, Callable[[bytes, random.Random], bytes]]] = [  # (share, mutation)
    (0.25, lambda raw, rng: raw),
    (0.2, flip_bits),
    (0.15, truncate),
    (0.15, retag),
    (0.25, bad_utf8),
]


def body(message: descriptor.Descriptor, rng: random.Random) -> bytes:
    """One raw request body for a method taking `message`."""
    kind = rng.random()
    if kind < 0.15:
        return rng.randbytes(rng.choice([0, 1, 2, 5, 16, 64, 300]))
    if kind < 0.25:
        return nested_struct(rng.randint(1, 500)).SerializeToString()  # a deep Struct where another message goes
    struct_depth = rng.randint(1, 500) if rng.random() < 0.25 else rng.randint(1, 4)
    raw = sample(message, rng, struct_depth).SerializeToString()
    (mutate,) = rng.choices([m for _, m in MUTATIONS], weights=[w for w, _ in MUTATIONS])
    return mutate(raw, rng)


def huge_bodies(message: descriptor.Descriptor, rng: random.Random, megabytes: list[int]) -> list[bytes]:
    """Bodies of about the given sizes (MiB, at most 16): random bytes, or a long string field."""
    out = []
    for size in megabytes:
        length = size * 1024 * 1024 - 64
        if rng.random() < 0.5:
            out.append(rng.randbytes(length))
        else:
            out.append(b"\x0a" + _encode_varint(length - 8) + b"p" * (length - 8))  # field 1, a long string
    return out


class Records(logging.Handler):
    """Every record of the server's loggers (assignsvc, grpc) while attached."""

    NAMES = ("assignsvc", "grpc")

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self._levels: list[tuple[logging.Logger, int]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def attach(self) -> Records:
        for name in self.NAMES:
            logger = logging.getLogger(name)
            self._levels.append((logger, logger.level))
            logger.addHandler(self)
            logger.setLevel(logging.DEBUG)
        return self

    def detach(self) -> None:
        for logger, level in self._levels:
            logger.removeHandler(self)
            logger.setLevel(level)

    def matching(self, predicate: Callable[[logging.LogRecord], bool]) -> list[logging.LogRecord]:
        return [r for r in self.records if predicate(r)]

    def malformed(self) -> list[logging.LogRecord]:
        """The lines saying a request did not decode."""
        return self.matching(lambda r: "malformed request" in r.getMessage())

    def noisy(self) -> list[str]:
        """Records above INFO or carrying a traceback: none is expected from bad input."""
        bad = self.matching(lambda r: bool(r.exc_info) or r.levelno > logging.INFO or "Traceback" in r.getMessage())
        return [f"{r.name} {r.levelname} {r.getMessage()[:300]}" for r in bad]
