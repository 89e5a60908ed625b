"""Assign, BatchAssign and StreamAssign answers written straight as protobuf bytes.

Filling a message per answer and serializing it cost ~2.4 us of a BatchAssign item's
~13 us, and was the costliest Python function of a new participant's Assign (measured
in benchmarks/hot_path.py). Answers share almost everything: of an Assignment's fields
only participant_id and first_seen_time vary between participants given the same arm
of the same experiment version, and a batch of new participants shares even the
first-seen time. So the shared fields are serialized once by protobuf itself
(fill_assignment, the one place an answer's fields are decided), and each answer adds
its own two fields, by hand, in field-number order: the bytes are exactly what
SerializeToString(deterministic=True) writes (tests/unit/test_reply_bytes.py compares
them). Deterministic, because an arm value that is a JSON object is a protobuf map,
whose entries are otherwise written in an order that can differ between two equal
messages.

Every message around an Assignment holds it, or the AssignResult holding it, in its
field 1 (AssignResponse, AssignResult, BatchAssignResponse.results,
StreamAssignResponse.result): field_one() wraps one level.
"""

from __future__ import annotations

from assignsvc.api.convert import fill_assignment
from assignsvc.app.assign import AssignmentResult
from assignsvc.v1 import assignment_service_pb2 as apb

# Wire tags (field number << 3 | wire type 2: length-delimited) of the fields written here.
_FIELD_ONE = b"\x0a"
_PARTICIPANT_ID = b"\x12"  # Assignment.participant_id = 2
_FIRST_SEEN_TIME = b"\x32"  # Assignment.first_seen_time = 6
_SECONDS, _NANOS = b"\x08", b"\x10"  # Timestamp.seconds = 1, nanos = 2 (varints)
# Shared parts kept (experiment versions x reasons x arms); past it they are built anew.
MAX_SHARED = 4096

_ONE_BYTE = [bytes((value,)) for value in range(0x80)]  # the varints of one byte, built once


def varint(value: int) -> bytes:
    """A non-negative integer as a protobuf base-128 varint."""
    if value < 0x80:
        return _ONE_BYTE[value]
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def field_one(payload: bytes) -> bytes:
    """A message whose field 1 (length-delimited) holds payload, and nothing else."""
    return _FIELD_ONE + varint(len(payload)) + payload


def _timestamp(first_seen_ms: int) -> bytes:
    """Assignment.first_seen_time, as protobuf writes it (zero parts left out)."""
    seconds, millis = divmod(first_seen_ms, 1000)
    body = b""
    if seconds:
        body += _SECONDS + varint(seconds)
    if millis:
        body += _NANOS + varint(millis * 1_000_000)
    return _FIRST_SEEN_TIME + varint(len(body)) + body


class AssignmentWriter:
    """Serializes Assignments, keeping the parts that answers share."""

    __slots__ = ("_last_time", "_shared")

    def __init__(self) -> None:
        # (experiment id, id of the reason, arm index, bucket version, persisted) ->
        # (the arm, experiment_id field, fields 3-5, fields 7-8)
        self._shared: dict[tuple[object, ...], tuple[object, bytes, bytes, bytes]] = {}
        self._last_time = (0, b"")  # (first_seen_ms, its field): a batch's new rows share it

    def assignment(self, result: AssignmentResult, local_id: str) -> bytes:
        """The serialized Assignment of `result`, shown under the experiment id `local_id`."""
        # id() of the reason: an Enum member's own __hash__ runs in Python (~200 ns); members live forever
        key = (result.experiment_id, id(result.reason), result.arm_index, result.bucket_version, result.persisted)
        shared = self._shared.get(key)
        if shared is None or shared[0] is not result.arm:  # a changed arm (its value) is built anew
            if len(self._shared) >= MAX_SHARED:
                self._shared.clear()
            shared = self._shared[key] = _shared_parts(result, local_id)
        _, head, middle, tail = shared
        participant = result.participant_id.encode()
        body = (
            head + _PARTICIPANT_ID + varint(len(participant)) + participant + middle if participant else head + middle
        )
        first_seen_ms = result.first_seen_ms
        if first_seen_ms:
            last_ms, stamp = self._last_time
            if last_ms != first_seen_ms:
                stamp = _timestamp(first_seen_ms)
                self._last_time = (first_seen_ms, stamp)
            body += stamp
        return body + tail


def _shared_parts(result: AssignmentResult, local_id: str) -> tuple[object, bytes, bytes, bytes]:
    """The fields of result's Assignment that do not depend on the participant, serialized
    by protobuf and cut where the participant's own fields go (2 and 6)."""
    filled = apb.Assignment()
    fill_assignment(filled, result._replace(participant_id="", first_seen_ms=0), local_id)
    head = apb.Assignment(experiment_id=filled.experiment_id).SerializeToString()
    tail = apb.Assignment(bucket_version=filled.bucket_version, persisted=filled.persisted).SerializeToString()
    for name in ("experiment_id", "bucket_version", "persisted"):
        filled.ClearField(name)
    return result.arm, head, filled.SerializeToString(deterministic=True), tail
